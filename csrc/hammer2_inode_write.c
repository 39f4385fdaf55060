/*
 * Namespace modifications: create, unlink, link, rename, setattr.  An
 * inode lives in its PFS's inode index (keyed by inode number); each name
 * for it is a DIRENT in a directory, keyed by the name's hash plus a
 * collision counter in the low 15 bits.  Hardlinks are simply more
 * dirents and nlinks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hammer2.h"

#define SHARED	(HAMMER2_LOOKUP_SHARED)

uint64_t
hammer2_time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* Nanoseconds of the monotonic clock, for intervals. */
int64_t
hammer2_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The transaction id modifications are stamped with (same on all nodes). */
hammer2_tid_t
hammer2_pfs_mtid(hammer2_pfs_t *pfs)
{
	hammer2_tid_t mtid = 0;

	for (int i = 0; i < pfs->ndevs; ++i)
		if (pfs->devs[i]->mtid > mtid)
			mtid = pfs->devs[i]->mtid;
	return mtid;
}

static void
xid_to_uuid(hammer2_uuid_t *uuid, uint32_t id)
{
	memset(uuid, 0, sizeof(*uuid));
	memcpy(&uuid->bytes[12], &id, sizeof(id));
}

/*
 * Find a name in a directory.  On success *cparentp and *clusterp hold the
 * iteration parent and the (locked) dirent for the caller to modify; it
 * must release them with hammer2_dirent_release().
 */
int
hammer2_dirent_find(hammer2_cluster_t *dir, const uint8_t *name, size_t len,
		    hammer2_cluster_t **cparentp, hammer2_cluster_t **clusterp,
		    hammer2_dirent_t *ent)
{
	hammer2_key_t key = hammer2_dirhash(name, len);
	hammer2_key_t key_end = key | HAMMER2_DIRHASH_LOMASK;
	hammer2_cluster_t *cparent, *cluster;
	hammer2_key_t next;
	int error;

	cparent = hammer2_cluster_lookup_init(dir, 0);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, key, key_end, 0);
	while (cluster) {
		if (hammer2_dirent_decode(cluster, ent) == 0 &&
		    ent->namlen == len && memcmp(ent->name, name, len) == 0) {
			*cparentp = cparent;
			*clusterp = cluster;
			return 0;
		}
		cluster = hammer2_cluster_next(cparent, cluster, &next, key,
					       key_end, 0);
	}
	error = cparent->error;
	hammer2_cluster_lookup_done(cparent);
	if (error)
		return error;
	return hammer2_seterr(ENOENT, "no entry '%.*s'", (int)len, name);
}

void
hammer2_dirent_release(hammer2_cluster_t *cparent, hammer2_cluster_t *cluster)
{
	hammer2_cluster_unlock(cluster);
	hammer2_cluster_drop(cluster);
	hammer2_cluster_lookup_done(cparent);
}

/*
 * Lowest free key for the name's hash: the collision counter in the low
 * 15 bits starts at 1 (the bare hash is what super-root entries use).
 */
static int
dirent_free_key(hammer2_cluster_t *dir, hammer2_key_t hash, hammer2_key_t *keyp)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_key_t want = hash + 1, next;
	int error;

	cparent = hammer2_cluster_lookup_init(dir, 0);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, hash,
					 hash | HAMMER2_DIRHASH_LOMASK, 0);
	while (cluster) {
		if (cluster->focus->bref.key > want)
			break;
		want = cluster->focus->bref.key + 1;
		cluster = hammer2_cluster_next(cparent, cluster, &next, hash,
					       hash | HAMMER2_DIRHASH_LOMASK, 0);
	}
	error = cparent->error;
	if (cluster) {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	}
	hammer2_cluster_lookup_done(cparent);
	if (error)
		return error;
	if (want > (hash | HAMMER2_DIRHASH_LOMASK))
		return hammer2_seterr(ENOSPC, "directory hash bucket full");
	*keyp = want;
	return 0;
}

/* Add the dirent name -> (inum, type) to a directory. */
int
hammer2_dirent_add(hammer2_cluster_t *dir, const uint8_t *name, size_t len,
	   hammer2_tid_t inum, uint8_t type, hammer2_tid_t mtid)
{
	const hammer2_inode_meta_t *dmeta = &hammer2_cluster_rdata(dir)->ipdata.meta;
	hammer2_cluster_t *cparent, *cluster;
	hammer2_blockref_t *bref;
	hammer2_key_t key = 0;
	size_t bytes;
	int error;

	error = dirent_free_key(dir, hammer2_dirhash(name, len) &
				~HAMMER2_DIRHASH_LOMASK, &key);
	if (error)
		return error;
	/* a name that does not fit the blockref's check area gets a block */
	bytes = len > sizeof(bref->check.buf) ? HAMMER2_ALLOC_MIN : 0;
	cparent = hammer2_cluster_lookup_init(dir, 0);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	error = hammer2_cluster_create(cparent, &cluster, key, 0,
				       HAMMER2_BREF_TYPE_DIRENT, bytes, mtid);
	if (error == 0) {
		bref = &cluster->focus->bref;
		bref->embed.dirent.inum = inum;
		bref->embed.dirent.namlen = (uint16_t)len;
		bref->embed.dirent.type = type;
		bref->methods = (uint8_t)(HAMMER2_ENC_CHECK(dmeta->check_algo) |
					  HAMMER2_ENC_COMP(dmeta->comp_algo));
		if (bytes)
			memcpy(cluster->focus->data->buf, name, len);
		else
			memcpy(bref->check.buf, name, len);
		error = hammer2_cluster_modsync(cluster);
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	}
	hammer2_cluster_lookup_done(cparent);
	return error;
}

/*
 * A directory's entries changed: POSIX moves its mtime and its ctime
 * (make and backup tools compare ctimes).
 */
static int
dir_touch(hammer2_cluster_t *dir, hammer2_tid_t mtid, uint64_t now)
{
	hammer2_inode_data_t *ip;
	int error;

	ip = hammer2_cluster_modify_ip(dir, mtid, &error);
	if (ip == NULL)
		return error;
	ip->meta.mtime = now;
	ip->meta.ctime = now;
	return hammer2_cluster_modsync(dir);
}

/* Whether a directory has no entries. */
static int
dir_empty(hammer2_cluster_t *dir, int *emptyp)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_key_t next;
	int error;

	cparent = hammer2_cluster_lookup_init(dir, SHARED);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, HAMMER2_DIRHASH_VISIBLE,
					 HAMMER2_KEY_MAX,
					 SHARED | HAMMER2_LOOKUP_NODATA);
	*emptyp = cluster == NULL;
	error = cluster ? 0 : cparent->error;
	if (cluster) {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	}
	hammer2_cluster_lookup_done(cparent);
	return error;
}

/*
 * Create an inode of attr->type named name in directory dinum.  Regular
 * files, symlinks and fifos start with (empty) embedded data.  The
 * creation time (attr->ctime if given, so a caller that goes on to
 * modify the inode keeps one time) stamps all its times and the
 * directory's mtime and ctime; atime and mtime may be given apart.
 */
int
hammer2_inode_create(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		     const uint8_t *name, size_t len, const hammer2_attr_t *attr,
		     hammer2_tid_t *inump)
{
	hammer2_tid_t mtid = hammer2_pfs_mtid(pfs);
	hammer2_cluster_t *dir, *cparent, *ip;
	hammer2_inode_data_t *root, *ipd;
	const hammer2_inode_meta_t *dmeta;
	hammer2_dirent_t ent;
	hammer2_cluster_t *dc, *dp;
	uint64_t now = (attr->mask & HAMMER2_SETATTR_CTIME) ? attr->ctime :
		       hammer2_time_now();
	hammer2_tid_t inum;
	int error;

	*inump = 0;
	if ((error = hammer2_name_validate(name, len)) != 0)
		return error;
	if ((error = hammer2_dir_get(pfs, dinum, &dir)) != 0)
		return error;
	error = hammer2_dirent_find(dir, name, len, &dp, &dc, &ent);
	if (error == 0) {
		hammer2_dirent_release(dp, dc);
		hammer2_cluster_drop(dir);
		return hammer2_seterr(EEXIST, "'%.*s' already exists",
				      (int)len, name);
	}
	if (error != ENOENT)
		goto done;
	/* the PFS root keeps the inode number allocator */
	root = hammer2_cluster_modify_ip(pfs->iroot, mtid, &error);
	if (root == NULL)
		goto done;
	if (root->meta.pfs_inum < HAMMER2_INODE_START - 1)
		root->meta.pfs_inum = HAMMER2_INODE_START - 1;
	inum = ++root->meta.pfs_inum;
	hammer2_cluster_modsync(pfs->iroot);

	cparent = hammer2_cluster_lookup_init(pfs->iroot, 0);
	if (cparent == NULL) {
		error = hammer2_seterr(ENOMEM, "out of memory");
		goto done;
	}
	error = hammer2_cluster_create(cparent, &ip, inum, 0,
				       HAMMER2_BREF_TYPE_INODE,
				       HAMMER2_INODE_BYTES, mtid);
	hammer2_cluster_lookup_done(cparent);
	if (error)
		goto done;
	dmeta = &hammer2_cluster_rdata(dir)->ipdata.meta;
	ipd = &ip->focus->data->ipdata;
	ipd->meta.version = 1;
	ipd->meta.type = attr->type;
	ipd->meta.mode = attr->mode & 07777;
	ipd->meta.inum = inum;
	ipd->meta.nlinks = 1;
	ipd->meta.iparent = dinum;
	/* names live in dirents; the inode itself is named by its number */
	ipd->meta.name_key = inum;
	ipd->meta.name_len = (uint16_t)snprintf((char *)ipd->filename,
						sizeof(ipd->filename),
						"0x%016llx",
						(unsigned long long)inum);
	ipd->meta.comp_algo = dmeta->comp_algo;
	ipd->meta.check_algo = dmeta->check_algo;
	ipd->meta.rmajor = attr->rmajor;
	ipd->meta.rminor = attr->rminor;
	xid_to_uuid(&ipd->meta.uid, attr->uid);
	xid_to_uuid(&ipd->meta.gid, attr->gid);
	ipd->meta.ctime = now;
	ipd->meta.mtime = (attr->mask & HAMMER2_SETATTR_MTIME) ? attr->mtime : now;
	ipd->meta.atime = (attr->mask & HAMMER2_SETATTR_ATIME) ? attr->atime : now;
	if (attr->type != HAMMER2_OBJTYPE_DIRECTORY)
		ipd->meta.op_flags |= HAMMER2_OPFLAG_DIRECTDATA;
	ip->focus->bref.methods = (uint8_t)(HAMMER2_ENC_CHECK(dmeta->check_algo) |
					    HAMMER2_ENC_COMP(dmeta->comp_algo));
	hammer2_cluster_modsync(ip);
	hammer2_cluster_unlock(ip);
	hammer2_cluster_drop(ip);

	error = hammer2_dirent_add(dir, name, len, inum, attr->type, mtid);
	if (error == 0)
		error = dir_touch(dir, mtid, now);
	if (error == 0)
		*inump = inum;
done:
	hammer2_cluster_drop(dir);
	return error;
}

/* Drop one link of an inode; the last one deletes it. */
static int
inode_unref(hammer2_pfs_t *pfs, hammer2_tid_t inum, hammer2_tid_t mtid,
	    uint64_t now)
{
	hammer2_inode_data_t *ipd;
	hammer2_cluster_t *ip;
	int error;

	if ((error = hammer2_inode_get(pfs, inum, &ip)) != 0)
		return error;
	hammer2_cluster_lock(ip, 0);
	ipd = hammer2_cluster_modify_ip(ip, mtid, &error);
	if (ipd) {
		if (ipd->meta.nlinks > 0)
			--ipd->meta.nlinks;
		ipd->meta.ctime = now;
		if (ipd->meta.type == HAMMER2_OBJTYPE_DIRECTORY ||
		    (ipd->meta.nlinks == 0 && !(pfs->keep_unlinked &&
		     pfs->keep_unlinked(pfs->keep_arg, inum))))
			error = hammer2_cluster_delete(ip, mtid);
		else
			error = hammer2_cluster_modsync(ip);
	}
	hammer2_cluster_unlock(ip);
	hammer2_cluster_drop(ip);
	return error;
}

/*
 * Remove name from directory dir at time now.  isdir: 1 only a directory
 * (rmdir, which must be empty), 0 only a non-directory (unlink), -1
 * either.
 */
static int
entry_remove(hammer2_pfs_t *pfs, hammer2_cluster_t *dir, const uint8_t *name,
	     size_t len, int isdir, hammer2_tid_t mtid, uint64_t now)
{
	hammer2_cluster_t *dp, *dc, *target;
	hammer2_dirent_t ent;
	int empty, error;

	error = hammer2_dirent_find(dir, name, len, &dp, &dc, &ent);
	if (error)
		return error;
	if (isdir == 1 && ent.type != HAMMER2_OBJTYPE_DIRECTORY)
		error = hammer2_seterr(ENOTDIR, "'%.*s' is not a directory",
				       (int)len, name);
	else if (isdir == 0 && ent.type == HAMMER2_OBJTYPE_DIRECTORY)
		error = hammer2_seterr(EISDIR, "'%.*s' is a directory",
				       (int)len, name);
	if (error == 0 && ent.type == HAMMER2_OBJTYPE_DIRECTORY) {
		error = hammer2_dir_get(pfs, ent.inum, &target);
		if (error == 0) {
			error = dir_empty(target, &empty);
			hammer2_cluster_drop(target);
			if (error == 0 && !empty)
				error = hammer2_seterr(ENOTEMPTY, "directory "
						       "'%.*s' is not empty",
						       (int)len, name);
		}
	}
	if (error == 0)
		error = hammer2_cluster_delete(dc, mtid);
	hammer2_dirent_release(dp, dc);
	if (error == 0)
		error = inode_unref(pfs, ent.inum, mtid, now);
	if (error == 0)
		error = dir_touch(dir, mtid, now);
	return error;
}

int
hammer2_inode_unlink(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		     const uint8_t *name, size_t len, int isdir)
{
	hammer2_cluster_t *dir;
	int error;

	if ((error = hammer2_name_validate(name, len)) != 0)
		return error;
	if ((error = hammer2_dir_get(pfs, dinum, &dir)) != 0)
		return error;
	error = entry_remove(pfs, dir, name, len, isdir, hammer2_pfs_mtid(pfs),
			     hammer2_time_now());
	hammer2_cluster_drop(dir);
	return error;
}

int
hammer2_inode_link(hammer2_pfs_t *pfs, hammer2_tid_t inum, hammer2_tid_t dinum,
		   const uint8_t *name, size_t len)
{
	hammer2_tid_t mtid = hammer2_pfs_mtid(pfs);
	hammer2_cluster_t *dir, *ip, *dp, *dc;
	hammer2_inode_data_t *ipd;
	uint64_t now = hammer2_time_now();
	hammer2_dirent_t ent;
	int error;

	if ((error = hammer2_name_validate(name, len)) != 0)
		return error;
	if ((error = hammer2_dir_get(pfs, dinum, &dir)) != 0)
		return error;
	if ((error = hammer2_inode_get(pfs, inum, &ip)) != 0)
		goto out_dir;
	if (hammer2_cluster_rdata(ip)->ipdata.meta.type ==
	    HAMMER2_OBJTYPE_DIRECTORY) {
		error = hammer2_seterr(EPERM, "cannot hardlink a directory");
		goto out;
	}
	error = hammer2_dirent_find(dir, name, len, &dp, &dc, &ent);
	if (error == 0) {
		hammer2_dirent_release(dp, dc);
		error = hammer2_seterr(EEXIST, "'%.*s' already exists",
				       (int)len, name);
		goto out;
	}
	if (error != ENOENT)
		goto out;
	ipd = hammer2_cluster_modify_ip(ip, mtid, &error);
	if (ipd == NULL)
		goto out;
	++ipd->meta.nlinks;
	ipd->meta.ctime = now;
	error = hammer2_cluster_modsync(ip);
	if (error == 0)
		error = hammer2_dirent_add(dir, name, len, inum, ipd->meta.type, mtid);
	if (error == 0)
		error = dir_touch(dir, mtid, now);
out:
	hammer2_cluster_drop(ip);
out_dir:
	hammer2_cluster_drop(dir);
	return error;
}

/* Whether directory `anc` is dinum or one of its ancestors. */
static int
is_ancestor(hammer2_pfs_t *pfs, hammer2_tid_t anc, hammer2_tid_t dinum,
	    int *resultp)
{
	hammer2_inode_meta_t meta;
	int error, depth = 0;

	*resultp = 0;
	while (dinum != pfs->info.inum) {
		if (dinum == anc) {
			*resultp = 1;
			return 0;
		}
		if (++depth > 4096 || (error = hammer2_inode_meta(pfs, dinum,
								   &meta, NULL)))
			return depth > 4096 ? hammer2_seterr(ELOOP, "directory "
					     "parents loop") : error;
		dinum = meta.iparent;
	}
	*resultp = anc == dinum;
	return 0;
}

int
hammer2_inode_rename(hammer2_pfs_t *pfs, hammer2_tid_t sdinum,
		     const uint8_t *sname, size_t slen, hammer2_tid_t tdinum,
		     const uint8_t *tname, size_t tlen, int flags)
{
	hammer2_tid_t mtid = hammer2_pfs_mtid(pfs);
	hammer2_cluster_t *sdir, *tdir = NULL, *dp, *dc, *ip;
	hammer2_dirent_t src, tgt;
	hammer2_inode_data_t *ipd;
	uint64_t now = hammer2_time_now();
	int error, loop;

	if ((error = hammer2_name_validate(sname, slen)) != 0 ||
	    (error = hammer2_name_validate(tname, tlen)) != 0)
		return error;
	if ((error = hammer2_dir_get(pfs, sdinum, &sdir)) != 0)
		return error;
	if ((error = hammer2_dir_get(pfs, tdinum, &tdir)) != 0)
		goto out;
	if ((error = hammer2_dirent_find(sdir, sname, slen, &dp, &dc, &src)) != 0)
		goto out;
	hammer2_dirent_release(dp, dc);
	if (src.type == HAMMER2_OBJTYPE_DIRECTORY) {
		if ((error = is_ancestor(pfs, src.inum, tdinum, &loop)) != 0)
			goto out;
		if (loop) {
			error = hammer2_seterr(EINVAL, "cannot move a directory "
					       "into itself");
			goto out;
		}
	}
	error = hammer2_dirent_find(tdir, tname, tlen, &dp, &dc, &tgt);
	if (error == 0) {
		hammer2_dirent_release(dp, dc);
		if (flags & HAMMER2_RENAME_NOREPLACE) {
			error = hammer2_seterr(EEXIST, "'%.*s' exists",
					       (int)tlen, tname);
			goto out;
		}
		if (tgt.inum == src.inum)
			goto out;	/* same inode: nothing to do */
		if (src.type == HAMMER2_OBJTYPE_DIRECTORY &&
		    tgt.type != HAMMER2_OBJTYPE_DIRECTORY)
			error = hammer2_seterr(ENOTDIR, "'%.*s' is not a "
					       "directory", (int)tlen, tname);
		else if (src.type != HAMMER2_OBJTYPE_DIRECTORY &&
			 tgt.type == HAMMER2_OBJTYPE_DIRECTORY)
			error = hammer2_seterr(EISDIR, "'%.*s' is a directory",
					       (int)tlen, tname);
		else
			error = entry_remove(pfs, tdir, tname, tlen, -1, mtid,
					     now);
		if (error)
			goto out;
	} else if (error != ENOENT) {
		goto out;
	}
	/* drop the old name, add the new one */
	if ((error = hammer2_dirent_find(sdir, sname, slen, &dp, &dc, &src)) != 0)
		goto out;
	error = hammer2_cluster_delete(dc, mtid);
	hammer2_dirent_release(dp, dc);
	if (error == 0)
		error = hammer2_dirent_add(tdir, tname, tlen, src.inum, src.type, mtid);
	if (error == 0 && (error = hammer2_inode_get(pfs, src.inum, &ip)) == 0) {
		ipd = hammer2_cluster_modify_ip(ip, mtid, &error);
		if (ipd) {
			if (src.type == HAMMER2_OBJTYPE_DIRECTORY)
				ipd->meta.iparent = tdinum;
			ipd->meta.ctime = now;	/* as Linux does */
			error = hammer2_cluster_modsync(ip);
		}
		hammer2_cluster_drop(ip);
	}
	if (error == 0)
		error = dir_touch(sdir, mtid, now);
	if (error == 0 && tdinum != sdinum)
		error = dir_touch(tdir, mtid, now);
out:
	if (tdir)
		hammer2_cluster_drop(tdir);
	hammer2_cluster_drop(sdir);
	return error;
}

int
hammer2_inode_setattr(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		      const hammer2_attr_t *attr)
{
	hammer2_tid_t mtid = hammer2_pfs_mtid(pfs);
	hammer2_inode_data_t *ipd;
	hammer2_cluster_t *ip;
	int error;

	if ((error = hammer2_inode_get(pfs, inum, &ip)) != 0)
		return error;
	ipd = hammer2_cluster_modify_ip(ip, mtid, &error);
	if (ipd) {
		if (attr->mask & HAMMER2_SETATTR_MODE)
			ipd->meta.mode = attr->mode & 07777;
		if (attr->mask & HAMMER2_SETATTR_UID)
			xid_to_uuid(&ipd->meta.uid, attr->uid);
		if (attr->mask & HAMMER2_SETATTR_GID)
			xid_to_uuid(&ipd->meta.gid, attr->gid);
		if (attr->mask & HAMMER2_SETATTR_ATIME)
			ipd->meta.atime = attr->atime;
		if (attr->mask & HAMMER2_SETATTR_MTIME)
			ipd->meta.mtime = attr->mtime;
		ipd->meta.ctime = (attr->mask & HAMMER2_SETATTR_CTIME) ?
				  attr->ctime : hammer2_time_now();
		error = hammer2_cluster_modsync(ip);
	}
	hammer2_cluster_drop(ip);
	return error;
}
