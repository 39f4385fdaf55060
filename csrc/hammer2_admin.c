/*
 * Administration: PFS create/delete, snapshots, compression and check
 * algorithm changes, destroying damaged entries without reading them
 * (inside a write transaction on every node), and finding orphaned
 * inodes (a read transaction is enough).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_cluster.h"

#define SHARED	(HAMMER2_LOOKUP_SHARED)

/* The super-root entry for label (locked), with its lookup parent. */
static int
sroot_find(hammer2_cluster_t *sroot, const char *label,
	   hammer2_cluster_t **cparentp, hammer2_cluster_t **clusterp)
{
	size_t len = strlen(label);
	hammer2_key_t key = hammer2_dirhash((const uint8_t *)label, len);
	hammer2_cluster_t *cparent, *cluster;
	hammer2_key_t next;
	int error;

	cparent = hammer2_cluster_lookup_init(sroot, 0);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, key,
					 key | HAMMER2_DIRHASH_LOMASK, 0);
	while (cluster) {
		const hammer2_inode_data_t *ip = &hammer2_cluster_rdata(cluster)->ipdata;

		if (hammer2_cluster_type(cluster) == HAMMER2_BREF_TYPE_INODE &&
		    ip->meta.name_len == len && memcmp(ip->filename, label, len) == 0) {
			*cparentp = cparent;
			*clusterp = cluster;
			return 0;
		}
		cluster = hammer2_cluster_next(cparent, cluster, &next, key,
					       key | HAMMER2_DIRHASH_LOMASK, 0);
	}
	error = cparent->error;
	hammer2_cluster_lookup_done(cparent);
	return error ? error : hammer2_seterr(ENOENT, "no PFS labelled '%s'", label);
}

static int
label_validate(const char *label)
{
	size_t len = strlen(label);

	if (len == 0 || len > HAMMER2_INODE_MAXNAME || strchr(label, '/'))
		return hammer2_seterr(EINVAL, "invalid PFS label '%s'", label);
	return 0;
}

/*
 * Create a PFS root under the super-root of every node; each node's copy
 * gets data from fill(node index, inode) (which may leave it as given).
 */
static int
pfs_insert(hammer2_dev_t **devs, int ndevs, const char *label,
	   int (*fill)(void *, int, hammer2_inode_data_t *), void *arg,
	   const hammer2_inode_data_t *proto)
{
	hammer2_cluster_t *sroot, *cparent, *cluster, *dp, *dc;
	hammer2_tid_t mtid = 0;
	int error;

	if ((error = label_validate(label)) != 0)
		return error;
	for (int i = 0; i < ndevs; ++i)
		if (devs[i]->mtid > mtid)
			mtid = devs[i]->mtid;
	if ((error = hammer2_sroot_get(devs, ndevs, &sroot)) != 0)
		return error;
	error = sroot_find(sroot, label, &dp, &dc);
	if (error == 0) {
		hammer2_dirent_release(dp, dc);
		hammer2_cluster_drop(sroot);
		return hammer2_seterr(EEXIST, "a PFS labelled '%s' exists", label);
	}
	if (error != ENOENT)
		goto out;
	cparent = hammer2_cluster_lookup_init(sroot, 0);
	if (cparent == NULL) {
		error = hammer2_seterr(ENOMEM, "out of memory");
		goto out;
	}
	error = hammer2_cluster_create(cparent, &cluster, proto->meta.name_key, 0,
				       HAMMER2_BREF_TYPE_INODE,
				       HAMMER2_INODE_BYTES, mtid);
	hammer2_cluster_lookup_done(cparent);
	if (error) {
		if (error == EEXIST)
			error = hammer2_seterr(EEXIST, "label '%s' hashes like an "
					       "existing PFS", label);
		goto out;
	}
	for (int i = 0; i < cluster->nchains && error == 0; ++i) {
		hammer2_chain_t *chain = cluster->array[i].chain;

		if (chain == NULL)
			continue;
		memcpy(chain->data, proto, sizeof(*proto));
		chain->bref.flags |= HAMMER2_BREF_FLAG_PFSROOT;
		chain->bref.methods = (uint8_t)HAMMER2_ENC_CHECK(
			HAMMER2_DEC_ALGO(proto->meta.check_algo));
		if (fill)
			error = fill(arg, i, &chain->data->ipdata);
	}
	hammer2_cluster_unlock(cluster);
	hammer2_cluster_drop(cluster);
out:
	hammer2_cluster_drop(sroot);
	return error;
}

int
hammer2_pfs_create(hammer2_dev_t **devs, int ndevs, const char *label,
		   int pfs_type, const hammer2_uuid_t *clid, int comp, int check)
{
	hammer2_inode_data_t ip;
	int error;

	if (pfs_type < HAMMER2_PFSTYPE_CACHE || pfs_type > HAMMER2_PFSTYPE_MASTER ||
	    pfs_type == 0x02)
		return hammer2_seterr(EINVAL, "invalid PFS type %d", pfs_type);
	if ((error = label_validate(label)) != 0)
		return error;
	error = hammer2_pfs_inode_init(&ip, label, pfs_type, 0, comp, check,
				       ndevs, clid, hammer2_time_now());
	return error ? error : pfs_insert(devs, ndevs, label, NULL, NULL, &ip);
}

int
hammer2_pfs_delete(hammer2_dev_t **devs, int ndevs, const char *label)
{
	hammer2_tid_t mtid = 0;
	hammer2_cluster_t *sroot, *dp, *dc;
	hammer2_pfs_info_t *infos;
	int count, error;

	if ((error = hammer2_pfs_list(devs, ndevs, &infos, &count)) != 0)
		return error;
	free(infos);
	if ((error = hammer2_sroot_get(devs, ndevs, &sroot)) != 0)
		return error;
	error = sroot_find(sroot, label, &dp, &dc);
	if (error == 0) {
		if (count <= 1) {
			error = hammer2_seterr(EINVAL, "'%s' is the last PFS", label);
		} else {
			for (int i = 0; i < ndevs; ++i)
				if (devs[i]->mtid > mtid)
					mtid = devs[i]->mtid;
			error = hammer2_cluster_delete(dc, mtid);
		}
		hammer2_dirent_release(dp, dc);
	}
	hammer2_cluster_drop(sroot);
	return error;
}

struct snap {
	hammer2_pfs_t		*pfs;
	const char		*label;
	uint64_t		now;
};

/* Each node's snapshot root copies that node's PFS root, blockset too. */
static int
snap_fill(void *arg, int node, hammer2_inode_data_t *ip)
{
	struct snap *s = arg;
	hammer2_chain_t *src = s->pfs->iroot->array[node].chain;
	size_t len = strlen(s->label);
	int error;

	if (src == NULL || (error = hammer2_chain_load_data(src)) != 0)
		return src ? error : hammer2_seterr(EIO, "node %d has no PFS root",
						    node);
	memcpy(ip, &src->data->ipdata, sizeof(*ip));
	memset(ip->filename, 0, sizeof(ip->filename));
	memcpy(ip->filename, s->label, len);
	ip->meta.name_len = (uint16_t)len;
	ip->meta.name_key = hammer2_dirhash((const uint8_t *)s->label, len);
	ip->meta.pfs_subtype = HAMMER2_PFSSUBTYPE_SNAPSHOT;
	ip->meta.op_flags |= HAMMER2_OPFLAG_PFSROOT;
	ip->meta.ctime = s->now;
	if ((error = hammer2_uuid_random(&ip->meta.pfs_clid)) != 0)
		return error;
	return hammer2_uuid_random(&ip->meta.pfs_fsid);
}

/*
 * Turn a fresh snapshot of the whole PFS into one of directory dinum: its
 * root takes the directory's entries and attributes instead of the PFS
 * root's.  The inode index stays whole (unreachable inodes cost nothing
 * but their share of blocks).
 */
static int
snapshot_reroot(hammer2_pfs_t *src, hammer2_tid_t dinum, const char *label)
{
	hammer2_tid_t mtid = hammer2_pfs_mtid(src);
	hammer2_cluster_t *cparent, *cluster;
	hammer2_inode_meta_t dmeta;
	hammer2_inode_data_t *root;
	hammer2_dirent_t *ents = NULL;
	size_t nents = 0;
	hammer2_pfs_t *snap;
	hammer2_key_t next;
	int error;

	if ((error = hammer2_inode_meta(src, dinum, &dmeta, NULL)) != 0)
		return error;
	if (dmeta.type != HAMMER2_OBJTYPE_DIRECTORY)
		return hammer2_seterr(ENOTDIR, "inode 0x%llx is not a directory",
				      (unsigned long long)dinum);
	error = hammer2_dir_entries(src, dinum, &ents, &nents);
	if (error == 0)
		error = hammer2_pfs_open(src->devs, src->ndevs, label, &snap);
	if (error) {
		free(ents);
		return error;
	}
	cparent = hammer2_cluster_lookup_init(snap->iroot, 0);
	cluster = cparent ? hammer2_cluster_lookup(cparent, &next,
						   HAMMER2_DIRHASH_VISIBLE,
						   HAMMER2_KEY_MAX,
						   HAMMER2_LOOKUP_NODATA) : NULL;
	while (cluster && error == 0) {
		error = hammer2_cluster_delete(cluster, mtid);
		cluster = hammer2_cluster_next(cparent, cluster, &next, 0,
					       HAMMER2_KEY_MAX,
					       HAMMER2_LOOKUP_NODATA);
	}
	if (cluster) {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	}
	if (cparent)
		hammer2_cluster_lookup_done(cparent);
	for (size_t i = 0; i < nents && error == 0; ++i)
		error = hammer2_dirent_add(snap->iroot, ents[i].name,
					   ents[i].namlen, ents[i].inum,
					   ents[i].type, mtid);
	root = error ? NULL : hammer2_cluster_modify_ip(snap->iroot, mtid, &error);
	if (root) {
		root->meta.mode = dmeta.mode;
		root->meta.uid = dmeta.uid;
		root->meta.gid = dmeta.gid;
		root->meta.mtime = dmeta.mtime;
		root->meta.comp_algo = dmeta.comp_algo;
		root->meta.check_algo = dmeta.check_algo;
		error = hammer2_cluster_modsync(snap->iroot);
	}
	hammer2_pfs_close(snap);
	free(ents);
	return error;
}

/*
 * Snapshot a PFS (or one of its directories): a new PFS root whose
 * blockset is the source root's, so the whole tree is shared
 * copy-on-write.  The source must be flushed (its blockset on media) on
 * every live node; nodes out of the cluster take no part.
 * Its pfs_lsnap_tid records the snapshot.
 */
int
hammer2_pfs_snapshot(hammer2_pfs_t *pfs, hammer2_tid_t dinum, const char *label)
{
	struct snap s = { pfs, label, hammer2_time_now() };
	hammer2_inode_data_t proto;
	hammer2_inode_data_t *root;
	int error;

	for (int i = 0; i < pfs->ndevs; ++i)
		if (hammer2_node_live(pfs->devs[i]) &&
		    (pfs->devs[i]->vchain->flags & HAMMER2_CHAIN_MODIFIED))
			return hammer2_seterr(EBUSY, "flush before a snapshot");
	memset(&proto, 0, sizeof(proto));
	proto.meta.name_key = hammer2_dirhash((const uint8_t *)label, strlen(label));
	proto.meta.check_algo = hammer2_cluster_rdata(pfs->iroot)->ipdata.meta.check_algo;
	error = pfs_insert(pfs->devs, pfs->ndevs, label, snap_fill, &s, &proto);
	if (error == 0 && dinum != pfs->info.inum)
		error = snapshot_reroot(pfs, dinum, label);
	if (error)
		return error;
	root = hammer2_cluster_modify_ip(pfs->iroot, hammer2_pfs_mtid(pfs), &error);
	if (root == NULL)
		return error;
	root->meta.pfs_lsnap_tid = pfs->devs[0]->voldata->mirror_tid;
	return hammer2_cluster_modsync(pfs->iroot);
}

/* New compression and/or check algorithm (-1: unchanged) for an inode. */
int
hammer2_inode_setalgo(hammer2_pfs_t *pfs, hammer2_tid_t inum, int comp,
		      int check)
{
	hammer2_inode_data_t *ipd;
	hammer2_cluster_t *ip;
	int error;

	if ((comp >= 0 && HAMMER2_DEC_ALGO(comp) > HAMMER2_COMP_ZLIB) ||
	    check > HAMMER2_CHECK_SHA192)
		return hammer2_seterr(EINVAL, "unknown algorithm");
	if ((error = hammer2_inode_get(pfs, inum, &ip)) != 0)
		return error;
	ipd = hammer2_cluster_modify_ip(ip, hammer2_pfs_mtid(pfs), &error);
	if (ipd) {
		if (comp >= 0)
			ipd->meta.comp_algo = (uint8_t)comp;
		if (check >= 0)
			ipd->meta.check_algo = (uint8_t)check;
		error = hammer2_cluster_modsync(ip);
	}
	hammer2_cluster_drop(ip);
	return error;
}

/* Remove a directory entry without reading the inode it names. */
int
hammer2_dirent_destroy(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		       const uint8_t *name, size_t len)
{
	hammer2_cluster_t *dir, *dp, *dc;
	hammer2_dirent_t ent;
	int error;

	if ((error = hammer2_dir_get(pfs, dinum, &dir)) != 0)
		return error;
	error = hammer2_dirent_find(dir, name, len, &dp, &dc, &ent);
	if (error == 0) {
		error = hammer2_cluster_delete(dc, hammer2_pfs_mtid(pfs));
		hammer2_dirent_release(dp, dc);
	}
	hammer2_cluster_drop(dir);
	return error;
}

/* Remove an inode from the PFS's index by number, without reading it. */
int
hammer2_inode_destroy(hammer2_pfs_t *pfs, hammer2_tid_t inum)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_key_t next;
	int error;

	if (inum == pfs->info.inum || (inum & HAMMER2_DIRHASH_VISIBLE))
		return hammer2_seterr(EINVAL, "inode 0x%llx cannot be destroyed",
				      (unsigned long long)inum);
	cparent = hammer2_cluster_lookup_init(pfs->iroot, 0);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, inum, inum,
					 HAMMER2_LOOKUP_NODATA);
	error = cparent->error;
	if (cluster) {
		error = hammer2_cluster_delete(cluster, hammer2_pfs_mtid(pfs));
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	} else if (error == 0) {
		error = hammer2_seterr(ENOENT, "inode 0x%llx not found",
				       (unsigned long long)inum);
	}
	hammer2_cluster_lookup_done(cparent);
	return error;
}

/*
 * Inodes of the PFS with no name left (nlinks 0, not a directory): what a
 * server stopped while an unlinked file was still open leaves behind.
 * Returns them in *inumsp (malloc'd, *countp of them).
 */
int
hammer2_pfs_orphans(hammer2_pfs_t *pfs, hammer2_tid_t **inumsp,
		    size_t *countp)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_tid_t *inums = NULL;
	size_t count = 0, cap = 0;
	hammer2_key_t next;
	int error = 0;

	*inumsp = NULL;
	*countp = 0;
	cparent = hammer2_cluster_lookup_init(pfs->iroot, SHARED);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, 0,
					 HAMMER2_DIRHASH_VISIBLE - 1, SHARED);
	while (cluster) {
		const hammer2_media_data_t *data = hammer2_cluster_rdata(cluster);

		if (hammer2_cluster_type(cluster) == HAMMER2_BREF_TYPE_INODE &&
		    data && data->ipdata.meta.nlinks == 0 &&
		    data->ipdata.meta.type != HAMMER2_OBJTYPE_DIRECTORY &&
		    data->ipdata.meta.inum != pfs->info.inum) {
			if (count == cap) {
				hammer2_tid_t *n;

				cap = cap ? cap * 2 : 16;
				if ((n = realloc(inums, cap * sizeof(*n))) == NULL) {
					error = hammer2_seterr(ENOMEM, "out of "
							       "memory");
					break;
				}
				inums = n;
			}
			inums[count++] = data->ipdata.meta.inum;
		}
		cluster = hammer2_cluster_next(cparent, cluster, &next, 0,
					       HAMMER2_DIRHASH_VISIBLE - 1,
					       SHARED);
	}
	error = hammer2_cluster_scan_done(cparent, cluster, error);
	if (error) {
		free(inums);
		return hammer2_preerr(error, "orphan scan of PFS %s",
				      pfs->info.label);
	}
	*inumsp = inums;
	*countp = count;
	return 0;
}
