/*
 * PFSes: the super-root (the inode under the volume header) holds one
 * PFS root inode per PFS, keyed by the directory hash of its label.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "hammer2_cluster.h"

#define SHARED	(HAMMER2_LOOKUP_SHARED)

int
hammer2_uuid_random(hammer2_uuid_t *uuid)
{
	if (getrandom(uuid->bytes, sizeof(uuid->bytes), 0) != sizeof(uuid->bytes))
		return hammer2_seterr(errno ? errno : EIO, "no random numbers");
	uuid->bytes[7] = (uint8_t)((uuid->bytes[7] & 0x0F) | 0x40);	/* v4 */
	uuid->bytes[8] = (uint8_t)((uuid->bytes[8] & 0x3F) | 0x80);
	return 0;
}

/*
 * A fresh PFS root inode: an empty directory named by its label, keyed
 * by the label's hash under the super-root, with its own inode number
 * allocator (pfs_inum; numbers are handed out from 1024 on).
 */
int
hammer2_pfs_inode_init(hammer2_inode_data_t *ip, const char *label, int pfs_type,
		       int subtype, int comp, int check, int nmasters,
		       const hammer2_uuid_t *clid, uint64_t now)
{
	size_t len = strlen(label);
	int error;

	memset(ip, 0, sizeof(*ip));
	ip->meta.version = 1;
	ip->meta.type = HAMMER2_OBJTYPE_DIRECTORY;
	ip->meta.mode = 0755;
	ip->meta.inum = 1;
	ip->meta.nlinks = 1;
	ip->meta.name_key = hammer2_dirhash((const uint8_t *)label, len);
	ip->meta.name_len = (uint16_t)len;
	memcpy(ip->filename, label, len);
	ip->meta.comp_algo = (uint8_t)comp;
	ip->meta.check_algo = (uint8_t)check;
	ip->meta.pfs_type = (uint8_t)pfs_type;
	ip->meta.pfs_subtype = (uint8_t)subtype;
	ip->meta.pfs_nmasters = (uint8_t)(nmasters > 1 ? nmasters : 0);
	ip->meta.pfs_inum = 16;
	ip->meta.op_flags = HAMMER2_OPFLAG_PFSROOT;
	ip->meta.ctime = ip->meta.mtime = ip->meta.btime = now;
	if (clid)
		ip->meta.pfs_clid = *clid;
	else if ((error = hammer2_uuid_random(&ip->meta.pfs_clid)) != 0)
		return error;
	return hammer2_uuid_random(&ip->meta.pfs_fsid);
}

/* One cluster over the volume roots of every node. */
static hammer2_cluster_t *
volume_cluster(hammer2_dev_t **devs, int ndevs)
{
	hammer2_cluster_t *cluster = hammer2_cluster_alloc(ndevs);

	if (cluster == NULL)
		return NULL;
	for (int i = 0; i < ndevs; ++i) {
		hammer2_chain_ref(devs[i]->vchain);
		cluster->array[i].chain = devs[i]->vchain;
	}
	hammer2_cluster_resolve_focus(cluster);
	return cluster;
}

/* The super-root inode cluster, unlocked and referenced. */
int
hammer2_sroot_get(hammer2_dev_t **devs, int ndevs, hammer2_cluster_t **sropp)
{
	hammer2_cluster_t *vol, *cparent, *sroot;
	hammer2_key_t next;
	int error;

	*sropp = NULL;
	if (ndevs < 1 || ndevs > HAMMER2_MAXCLUSTER)
		return hammer2_seterr(EINVAL, "a cluster has 1 to %d nodes, not %d",
				      HAMMER2_MAXCLUSTER, ndevs);
	vol = volume_cluster(devs, ndevs);
	if (vol == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cparent = hammer2_cluster_lookup_init(vol, SHARED);
	hammer2_cluster_drop(vol);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	sroot = hammer2_cluster_lookup(cparent, &next, 0, 0, SHARED);
	error = cparent->error;
	hammer2_cluster_lookup_done(cparent);
	if (sroot == NULL)
		return error ? hammer2_preerr(error, "super-root") :
			       hammer2_seterr(EINVAL, "volume has no super-root");
	hammer2_cluster_unlock(sroot);
	if (hammer2_cluster_type(sroot) != HAMMER2_BREF_TYPE_INODE) {
		hammer2_cluster_drop(sroot);
		return hammer2_seterr(EINVAL, "super-root blockref is not an inode");
	}
	*sropp = sroot;
	return 0;
}

static void
info_from_inode(const hammer2_inode_data_t *ip, hammer2_key_t key,
		hammer2_pfs_info_t *info)
{
	size_t len = ip->meta.name_len;

	memset(info, 0, sizeof(*info));
	if (len > HAMMER2_INODE_MAXNAME)
		len = HAMMER2_INODE_MAXNAME;
	memcpy(info->label, ip->filename, len);
	info->pfs_type = ip->meta.pfs_type;
	info->pfs_subtype = ip->meta.pfs_subtype;
	info->pfs_nmasters = ip->meta.pfs_nmasters;
	info->pfs_clid = ip->meta.pfs_clid;
	info->pfs_fsid = ip->meta.pfs_fsid;
	info->inum = ip->meta.inum;
	info->name_key = key;
}

/* Iterate PFS root inodes in [key_beg, key_end]; cb returns 1 to stop. */
static int
sroot_scan(hammer2_cluster_t *sroot, hammer2_key_t key_beg,
	   hammer2_key_t key_end,
	   int (*cb)(void *, hammer2_cluster_t *, const hammer2_pfs_info_t *),
	   void *arg)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_pfs_info_t info;
	hammer2_key_t next;
	int error = 0;

	cparent = hammer2_cluster_lookup_init(sroot, SHARED);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, key_beg, key_end, SHARED);
	while (cluster) {
		const hammer2_media_data_t *data = hammer2_cluster_rdata(cluster);

		if (hammer2_cluster_type(cluster) == HAMMER2_BREF_TYPE_INODE &&
		    data) {
			info_from_inode(&data->ipdata, cluster->focus->bref.key,
					&info);
			if (cb(arg, cluster, &info))
				break;
		}
		cluster = hammer2_cluster_next(cparent, cluster, &next, key_beg,
					       key_end, SHARED);
	}
	if (cluster == NULL)
		error = cparent->error;
	else {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	}
	hammer2_cluster_lookup_done(cparent);
	return error ? hammer2_preerr(error, "super-root directory") : 0;
}

struct list_ctx {
	hammer2_pfs_info_t	*infos;
	int			count;
	int			error;
};

static int
list_cb(void *arg, hammer2_cluster_t *cluster, const hammer2_pfs_info_t *info)
{
	struct list_ctx *ctx = arg;
	hammer2_pfs_info_t *p;

	(void)cluster;
	p = realloc(ctx->infos, (size_t)(ctx->count + 1) * sizeof(*p));
	if (p == NULL) {
		ctx->error = hammer2_seterr(ENOMEM, "out of memory");
		return 1;
	}
	ctx->infos = p;
	ctx->infos[ctx->count++] = *info;
	return 0;
}

/* Every PFS under the super-root; *infop is malloc'd (free it). */
int
hammer2_pfs_list(hammer2_dev_t **devs, int ndevs, hammer2_pfs_info_t **infop,
		 int *countp)
{
	struct list_ctx ctx = { NULL, 0, 0 };
	hammer2_cluster_t *sroot;
	int error;

	*infop = NULL;
	*countp = 0;
	error = hammer2_sroot_get(devs, ndevs, &sroot);
	if (error)
		return error;
	error = sroot_scan(sroot, 0, HAMMER2_KEY_MAX, list_cb, &ctx);
	hammer2_cluster_drop(sroot);
	if (error == 0)
		error = ctx.error;
	if (error) {
		free(ctx.infos);
		return error;
	}
	*infop = ctx.infos;
	*countp = ctx.count;
	return 0;
}

struct open_ctx {
	const char		*label;
	hammer2_pfs_t		*pfs;
};

static int
open_cb(void *arg, hammer2_cluster_t *cluster, const hammer2_pfs_info_t *info)
{
	struct open_ctx *ctx = arg;

	if (strcmp(info->label, ctx->label) != 0)
		return 0;
	ctx->pfs->info = *info;
	hammer2_cluster_ref(cluster);
	ctx->pfs->iroot = cluster;
	return 1;
}

int
hammer2_pfs_open(hammer2_dev_t **devs, int ndevs, const char *label,
		 hammer2_pfs_t **pfsp)
{
	size_t len = strlen(label);
	struct open_ctx ctx = { label, NULL };
	hammer2_cluster_t *sroot;
	hammer2_key_t key;
	int error;

	*pfsp = NULL;
	if (len == 0 || len > HAMMER2_INODE_MAXNAME)
		return hammer2_seterr(EINVAL, "invalid PFS label '%s'", label);
	error = hammer2_sroot_get(devs, ndevs, &sroot);
	if (error)
		return error;
	ctx.pfs = calloc(1, sizeof(*ctx.pfs));
	if (ctx.pfs == NULL) {
		hammer2_cluster_drop(sroot);
		return hammer2_seterr(ENOMEM, "out of memory");
	}
	key = hammer2_dirhash((const uint8_t *)label, len);
	error = sroot_scan(sroot, key, key | HAMMER2_DIRHASH_LOMASK, open_cb, &ctx);
	hammer2_cluster_drop(sroot);
	if (error == 0 && ctx.pfs->iroot == NULL)
		error = hammer2_seterr(ENOENT, "no PFS labelled '%s'", label);
	if (error) {
		free(ctx.pfs);
		return error;
	}
	/* open_cb's reference keeps the root (unlocked) for the PFS's life */
	memcpy(ctx.pfs->devs, devs, (size_t)ndevs * sizeof(*devs));
	ctx.pfs->ndevs = ndevs;
	*pfsp = ctx.pfs;
	return 0;
}

/* The PFS's root on node hmp, looked up anew (NULL: it lacks it yet). */
int
hammer2_pfs_root_lookup(hammer2_pfs_t *pfs, hammer2_dev_t *hmp,
			hammer2_chain_t **chainp)
{
	hammer2_pfs_t *tmp = NULL;
	int error;

	*chainp = NULL;
	error = hammer2_pfs_open(&hmp, 1, pfs->info.label, &tmp);
	if (error == 0) {
		*chainp = tmp->iroot->array[0].chain;
		hammer2_chain_ref(*chainp);
		hammer2_pfs_close(tmp);
	}
	return error == ENOENT ? 0 : error;
}

void
hammer2_pfs_root_set(hammer2_pfs_t *pfs, int index, hammer2_chain_t *chain)
{
	hammer2_cluster_item_t *item = &pfs->iroot->array[index];

	if (item->chain)
		hammer2_chain_drop(item->chain);
	item->chain = chain;
	item->error = 0;
	item->hmp = NULL;
	item->flags = chain ? 0 : HAMMER2_CITEM_INVALID;
}

/*
 * A commit's self-heal may have rewritten, on a live node, what stood
 * above this PFS's root there and could not be read when the root was
 * resolved (the super-root): the root is looked up again on a node that
 * healed anything since, so the node takes part in the modifications to
 * come instead of missing them.  Under every node's transaction lock,
 * held exclusively.
 */
static void
pfs_roots_refresh(hammer2_pfs_t *pfs)
{
	for (int i = 0; i < pfs->ndevs; ++i) {
		hammer2_cluster_item_t *item = &pfs->iroot->array[i];
		hammer2_dev_t *hmp = pfs->devs[i];
		uint64_t healed;
		hammer2_chain_t *chain;

		if (!hammer2_node_live(hmp) ||
		    (item->chain && item->chain->error == 0 && item->error == 0 &&
		     !(item->chain->flags & HAMMER2_CHAIN_DELETED)))
			continue;
		healed = __atomic_load_n(&hmp->node.healed, __ATOMIC_ACQUIRE);
		if (healed == pfs->healed_seen[i])
			continue;
		pfs->healed_seen[i] = healed;
		if (hammer2_pfs_root_lookup(pfs, hmp, &chain) == 0 && chain) {
			hammer2_pfs_root_set(pfs, i, chain);
			hammer2_cluster_resolve_focus(pfs->iroot);
		}
	}
}

/*
 * Transactions span every node, taken in node order.  A node swapped for
 * a fresh open while its lock was waited for (hammer2_nodeset.c) is let
 * go for the one in its place; once held, no node can be swapped.
 */
void
hammer2_pfs_trans_begin(hammer2_pfs_t *pfs, int write)
{
	for (int i = 0; i < pfs->ndevs; ++i) {
		hammer2_dev_t *hmp;

		for (;;) {
			hmp = __atomic_load_n(&pfs->devs[i], __ATOMIC_ACQUIRE);
			hammer2_trans_begin(hmp, write);
			if (hmp == __atomic_load_n(&pfs->devs[i], __ATOMIC_ACQUIRE))
				break;
			hammer2_trans_end(hmp);
		}
	}
	if (write && pfs->ndevs > 1)
		pfs_roots_refresh(pfs);
}

void
hammer2_pfs_trans_end(hammer2_pfs_t *pfs)
{
	for (int i = pfs->ndevs - 1; i >= 0; --i)
		hammer2_trans_end(pfs->devs[i]);
}

/* Whether a live node has modifications (or rewrites of what it could not
 * read) the next commit would write. */
int
hammer2_pfs_pending(hammer2_pfs_t *pfs)
{
	for (int i = 0; i < pfs->ndevs; ++i) {
		hammer2_dev_t *hmp = pfs->devs[i];

		if (hammer2_node_live(hmp) &&
		    ((hmp->vchain->flags | hmp->fchain->flags) &
		     HAMMER2_CHAIN_MODIFIED))
			return 1;
		if (hammer2_heal_pending(hmp))
			return 1;
	}
	return 0;
}

void
hammer2_pfs_close(hammer2_pfs_t *pfs)
{
	if (pfs->iroot)
		hammer2_cluster_drop(pfs->iroot);
	free(pfs);
}
