/*
 * Inodes and directories.  A PFS root indexes every inode of the PFS by
 * inode number (keys below 2^63); directory entries live under their
 * directory inode keyed by the directory hash of the name (bit 63 set).
 * Short names sit in the DIRENT blockref itself, long ones in a data block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

#define SHARED	(HAMMER2_LOOKUP_SHARED)

/*
 * The inode's cluster, referenced and unlocked; flags HAMMER2_LOOKUP_FOCUS:
 * of one node (a read's, hammer2_cluster_lookup_init).
 */
int
hammer2_inode_lookup(hammer2_pfs_t *pfs, hammer2_tid_t inum, int flags,
		     hammer2_cluster_t **clusterp)
{
	hammer2_cluster_t *cparent, *cluster;
	const hammer2_media_data_t *data;
	hammer2_key_t next;
	int error;

	*clusterp = NULL;
	if (inum == pfs->info.inum) {
		hammer2_cluster_ref(pfs->iroot);
		*clusterp = pfs->iroot;
		return 0;
	}
	if (inum & HAMMER2_DIRHASH_VISIBLE)
		return hammer2_seterr(ENOENT, "inode 0x%llx out of range",
				      (unsigned long long)inum);
	cparent = hammer2_cluster_lookup_init(pfs->iroot, SHARED | flags);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, inum, inum, SHARED);
	error = cparent->error;
	hammer2_cluster_lookup_done(cparent);
	if (cluster == NULL)
		return error ? hammer2_preerr(error, "inode 0x%llx",
					      (unsigned long long)inum) :
			       hammer2_seterr(ENOENT, "inode 0x%llx not found",
					      (unsigned long long)inum);
	hammer2_cluster_unlock(cluster);
	data = hammer2_cluster_rdata(cluster);
	if (hammer2_cluster_type(cluster) != HAMMER2_BREF_TYPE_INODE ||
	    data == NULL || data->ipdata.meta.inum != inum) {
		hammer2_cluster_drop(cluster);
		return hammer2_seterr(EINVAL, "inode index entry 0x%llx does not "
				      "hold that inode",
				      (unsigned long long)inum);
	}
	*clusterp = cluster;
	return 0;
}

/* The inode's cluster, of every node (to modify it), referenced and unlocked. */
int
hammer2_inode_get(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		  hammer2_cluster_t **clusterp)
{
	return hammer2_inode_lookup(pfs, inum, 0, clusterp);
}

/* The inode's fields (and blockref), read through one node. */
int
hammer2_inode_meta(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		   hammer2_inode_meta_t *meta, hammer2_blockref_t *bref)
{
	hammer2_cluster_t *cluster;
	int error;

	error = hammer2_inode_lookup(pfs, inum, HAMMER2_LOOKUP_FOCUS, &cluster);
	if (hammer2_focus_retry(pfs, error))
		error = hammer2_inode_lookup(pfs, inum, 0, &cluster);
	if (error)
		return error;
	*meta = hammer2_cluster_rdata(cluster)->ipdata.meta;
	if (bref)
		*bref = *hammer2_cluster_bref(cluster);
	hammer2_cluster_drop(cluster);
	return 0;
}

/*
 * Media bytes an inode's data takes, as the kernel reports it (va_bytes):
 * the data_count the last commit left in its blockref, never its size (a
 * sparse file holds what it holds).  A directory counts one inode: its
 * blockref's totals are its entries', not its files'.
 */
uint64_t
hammer2_inode_data_bytes(const hammer2_inode_meta_t *meta,
			 const hammer2_blockref_t *bref)
{
	if (meta->type == HAMMER2_OBJTYPE_DIRECTORY)
		return HAMMER2_INODE_BYTES;
	return bref->embed.stats.data_count;
}

/*
 * What makes a name unusable as one component of a host path, or NULL.
 * Media is untrusted: a name holding '/' or NUL, or being "." or "..",
 * would let a listing or an export step outside its directory.
 */
static const char *
name_problem(const uint8_t *name, size_t len)
{
	if (len == 0)
		return "empty";
	if (len > HAMMER2_NAME_MAX)
		return "longer than 255 bytes";
	if (memchr(name, '/', len) != NULL)
		return "contains '/'";
	if (memchr(name, 0, len) != NULL)
		return "contains NUL";
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return "'.' or '..'";
	return NULL;
}

int
hammer2_name_validate(const uint8_t *name, size_t len)
{
	const char *why = name_problem(name, len);

	return why ? hammer2_seterr(EINVAL, "invalid name: %s", why) : 0;
}

/*
 * A link target symlink(2) and readlink take: not empty, shorter than
 * PATH_MAX, no NUL inside.  fsck checks media with it too.
 */
int
hammer2_symlink_validate(const uint8_t *target, size_t len)
{
	if (len > HAMMER2_SYMLINK_MAX)
		return hammer2_seterr(ENAMETOOLONG, "symlink target of %zu "
				      "bytes (at most %d)", len,
				      HAMMER2_SYMLINK_MAX);
	if (len == 0)
		return hammer2_seterr(EINVAL, "empty symlink target");
	if (memchr(target, 0, len) != NULL)
		return hammer2_seterr(EINVAL, "symlink target holds a NUL byte");
	return 0;
}

/* Decode the element a directory lookup found; EAGAIN if not an entry. */
int
hammer2_dirent_decode(hammer2_cluster_t *cluster, hammer2_dirent_t *ent)
{
	const hammer2_blockref_t *bref = hammer2_cluster_bref(cluster);
	const hammer2_media_data_t *data = hammer2_cluster_rdata(cluster);
	const char *why;
	size_t len;

	memset(ent, 0, offsetof(hammer2_dirent_t, name));
	ent->key = bref->key;
	switch (bref->type) {
	case HAMMER2_BREF_TYPE_DIRENT:
		len = bref->embed.dirent.namlen;
		ent->inum = bref->embed.dirent.inum;
		ent->type = bref->embed.dirent.type;
		if (len > HAMMER2_INODE_MAXNAME)
			return hammer2_seterr(EINVAL, "directory entry 0x%llx: "
					      "name length %zu", (unsigned long long)
					      bref->key, len);
		if (len <= sizeof(bref->check.buf)) {
			memcpy(ent->name, bref->check.buf, len);
		} else {
			if (data == NULL || cluster->focus->bytes < len)
				return hammer2_seterr(EINVAL, "directory entry "
						      "0x%llx: name block missing "
						      "or short", (unsigned long long)
						      bref->key);
			memcpy(ent->name, data->buf, len);
		}
		break;
	case HAMMER2_BREF_TYPE_INODE:
		/* entries that are whole inodes (super-root style) */
		if (data == NULL)
			return EAGAIN;
		len = data->ipdata.meta.name_len;
		if (len > HAMMER2_INODE_MAXNAME)
			return hammer2_seterr(EINVAL, "directory entry 0x%llx: "
					      "name length %zu", (unsigned long long)
					      bref->key, len);
		ent->inum = data->ipdata.meta.inum;
		ent->type = data->ipdata.meta.type;
		memcpy(ent->name, data->ipdata.filename, len);
		break;
	default:
		return EAGAIN;
	}
	/* every consumer (listings, export, FUSE) gets only usable names */
	if ((why = name_problem(ent->name, len)) != NULL)
		return hammer2_seterr(EINVAL, "directory entry 0x%llx: invalid "
				      "name (%s)", (unsigned long long)bref->key,
				      why);
	ent->namlen = (uint16_t)len;
	return 0;
}

static int
dir_open(hammer2_pfs_t *pfs, hammer2_tid_t dinum, int flags,
	 hammer2_cluster_t **dirp)
{
	int error = hammer2_inode_lookup(pfs, dinum, flags, dirp);

	if (error)
		return error;
	if (hammer2_cluster_rdata(*dirp)->ipdata.meta.type !=
	    HAMMER2_OBJTYPE_DIRECTORY) {
		hammer2_cluster_drop(*dirp);
		*dirp = NULL;
		return hammer2_seterr(ENOTDIR, "inode 0x%llx is not a directory",
				      (unsigned long long)dinum);
	}
	return 0;
}

int
hammer2_dir_get(hammer2_pfs_t *pfs, hammer2_tid_t dinum, hammer2_cluster_t **dirp)
{
	return dir_open(pfs, dinum, 0, dirp);
}

/*
 * Scan directory entries with keys in [key_beg, key_end] until cb returns
 * non-zero (*stoppedp is then set); flags HAMMER2_LOOKUP_FOCUS: through
 * one node.  Returns 0 or an errno.
 */
static int
dir_scan(hammer2_pfs_t *pfs, hammer2_tid_t dinum, hammer2_key_t key_beg,
	 hammer2_key_t key_end, hammer2_readdir_cb_t cb, void *arg,
	 int *stoppedp, int flags)
{
	hammer2_cluster_t *dir, *cparent, *cluster;
	hammer2_dirent_t ent;
	hammer2_key_t next;
	int error;
	int rc = 0;

	*stoppedp = 0;
	error = dir_open(pfs, dinum, flags, &dir);
	if (error)
		return error;
	cparent = hammer2_cluster_lookup_init(dir, SHARED | flags);
	hammer2_cluster_drop(dir);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, key_beg, key_end, SHARED);
	while (cluster) {
		error = hammer2_dirent_decode(cluster, &ent);
		if (error == 0)
			rc = cb(arg, &ent);
		else if (error != EAGAIN)
			break;
		error = 0;
		if (rc)
			break;
		cluster = hammer2_cluster_next(cparent, cluster, &next, key_beg,
					       key_end, SHARED);
	}
	error = hammer2_cluster_scan_done(cparent, cluster, error);
	*stoppedp = rc != 0;
	if (error)
		return hammer2_preerr(error, "directory 0x%llx",
				      (unsigned long long)dinum);
	return 0;
}

struct match_ctx {
	const uint8_t		*name;
	size_t			len;
	hammer2_dirent_t	*ent;
};

static int
match_cb(void *arg, const hammer2_dirent_t *ent)
{
	struct match_ctx *ctx = arg;

	if (ent->namlen != ctx->len || memcmp(ent->name, ctx->name, ctx->len))
		return 0;
	*ctx->ent = *ent;
	return 1;
}

int
hammer2_dir_lookup(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		   const uint8_t *name, size_t len, hammer2_dirent_t *ent)
{
	struct match_ctx ctx = { name, len, ent };
	hammer2_key_t key;
	int found;
	int error;

	if ((error = hammer2_name_validate(name, len)) != 0)
		return error;
	key = hammer2_dirhash(name, len);
	/* through one node; again through all (cb kept nothing) on a failure */
	error = dir_scan(pfs, dinum, key, key | HAMMER2_DIRHASH_LOMASK,
			 match_cb, &ctx, &found, HAMMER2_LOOKUP_FOCUS);
	if (hammer2_focus_retry(pfs, error))
		error = dir_scan(pfs, dinum, key, key | HAMMER2_DIRHASH_LOMASK,
				 match_cb, &ctx, &found, 0);
	if (error == 0 && !found)
		error = hammer2_seterr(ENOENT, "no entry '%.*s' in directory "
				       "0x%llx", (int)len, name,
				       (unsigned long long)dinum);
	return error;
}

/* Every visible entry, in hash order.  cb's non-zero return stops. */
int
hammer2_dir_readdir(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		    hammer2_readdir_cb_t cb, void *arg)
{
	int stopped;

	return dir_scan(pfs, dinum, HAMMER2_DIRHASH_VISIBLE, HAMMER2_KEY_MAX,
			cb, arg, &stopped, 0);
}

struct dir_entries {
	hammer2_dirent_t	*ents;
	size_t			count, cap;
	int			oom;
};

static int
entries_cb(void *arg, const hammer2_dirent_t *ent)
{
	struct dir_entries *d = arg;

	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		hammer2_dirent_t *p = realloc(d->ents, cap * sizeof(*p));

		if (p == NULL) {
			d->oom = 1;
			return 1;
		}
		d->ents = p;
		d->cap = cap;
	}
	d->ents[d->count++] = *ent;
	return 0;
}

/*
 * Every visible entry, in hash order, in a new array *entsp (count in
 * *countp) for walks that descend before the directory's scan is over.
 * The caller frees it, also after an error: it then holds the entries
 * read before the error.
 */
int
hammer2_dir_entries(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		    hammer2_dirent_t **entsp, size_t *countp)
{
	struct dir_entries d = { NULL, 0, 0, 0 };
	int error;

	error = hammer2_dir_readdir(pfs, dinum, entries_cb, &d);
	if (error == 0 && d.oom)
		error = hammer2_seterr(ENOMEM, "out of memory");
	*entsp = d.ents;
	*countp = d.count;
	return error;
}

/* Entries with keys from key_beg on (a resumable readdir). */
int
hammer2_dir_readdir_at(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		       hammer2_key_t key_beg, hammer2_readdir_cb_t cb, void *arg)
{
	int stopped;

	return dir_scan(pfs, dinum, key_beg | HAMMER2_DIRHASH_VISIBLE,
			HAMMER2_KEY_MAX, cb, arg, &stopped, 0);
}
