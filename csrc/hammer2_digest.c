/*
 * Tree digest: one walk of a PFS (or of the tree below one directory)
 * recording, per path, what a checker compares against a model: type,
 * mode, owners, size, mtime, link count, inode number (hardlinks share
 * it), a symlink's target and an XXH3-64 of a file's logical contents
 * (holes read as zeros).  The torture compares every crash image with it.
 *
 * The image is untrusted: names and targets come through the validating
 * readers, the depth, the entry count, the path bytes and the bytes hashed
 * are bounded, and an error names the path it met.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "hammer2.h"

#define DIGEST_CHUNK	(256 * 1024)	/* file bytes read per call */

struct digest_walk {
	hammer2_pfs_t		*pfs;
	hammer2_digest_tree_t	*tree;
	const hammer2_digest_limits_t *lim;
	uint64_t		hashed;		/* file bytes hashed so far */
	uint8_t			*buf;		/* DIGEST_CHUNK */
	XXH3_state_t		*xs;
	char			target[HAMMER2_SYMLINK_MAX + 1];
	char			path[HAMMER2_DIGEST_MAXDEPTH *
				     (HAMMER2_NAME_MAX + 1) + 1];
};

/* Bytes appended to the tree's arena; their offset in *offp. */
static int
arena_add(struct digest_walk *w, const void *data, size_t len, size_t *offp)
{
	hammer2_digest_tree_t *t = w->tree;
	size_t cap;
	char *p;

	if (len > w->lim->max_arena - t->arena_len)
		return hammer2_seterr(E2BIG, "paths and targets exceed %zu "
				      "bytes", w->lim->max_arena);
	if (t->arena_len + len > t->arena_cap) {
		cap = t->arena_cap * 2 + len + 4096;
		if (cap > w->lim->max_arena)
			cap = w->lim->max_arena;
		if ((p = realloc(t->arena, cap)) == NULL)
			return hammer2_seterr(ENOMEM, "out of memory");
		t->arena = p;
		t->arena_cap = cap;
	}
	memcpy(t->arena + t->arena_len, data, len);
	*offp = t->arena_len;
	t->arena_len += len;
	return 0;
}

static hammer2_digest_ent_t *
ent_new(struct digest_walk *w)
{
	hammer2_digest_tree_t *t = w->tree;
	hammer2_digest_ent_t *p;
	size_t cap;

	if (t->count == t->cap) {
		cap = t->cap * 2 + 64;
		if ((p = realloc(t->ents, cap * sizeof(*p))) == NULL)
			return NULL;
		t->ents = p;
		t->cap = cap;
	}
	p = &t->ents[t->count++];
	memset(p, 0, sizeof(*p));
	return p;
}

/* XXH3-64 of size bytes of a file, holes as zeros. */
static int
digest_file(struct digest_walk *w, hammer2_tid_t inum, uint64_t size,
	    uint64_t *digestp)
{
	uint64_t off;
	size_t done;
	int error;

	if (size > w->lim->max_bytes - w->hashed)
		return hammer2_seterr(EFBIG, "file of %llu bytes: more than "
				      "the %llu bytes a digest may read",
				      (unsigned long long)size,
				      (unsigned long long)w->lim->max_bytes);
	w->hashed += size;
	if (XXH3_64bits_reset(w->xs) == XXH_ERROR)
		return hammer2_seterr(EINVAL, "xxh3 reset failed");
	for (off = 0; off < size; off += done) {
		error = hammer2_file_read(w->pfs, inum, off, w->buf,
					  DIGEST_CHUNK, &done);
		if (error)
			return error;
		if (done == 0)
			return hammer2_seterr(EIO, "read %llu of %llu bytes",
					      (unsigned long long)off,
					      (unsigned long long)size);
		XXH3_64bits_update(w->xs, w->buf, done);
	}
	*digestp = XXH3_64bits_digest(w->xs);
	return 0;
}

/* What one entry at w->path (plen bytes) records. */
static int
digest_entry(struct digest_walk *w, const hammer2_dirent_t *ent, size_t plen)
{
	hammer2_inode_meta_t meta;
	hammer2_digest_ent_t *e;
	size_t tlen = 0;
	int error;

	if (w->tree->count >= w->lim->max_entries)
		return hammer2_seterr(E2BIG, "more than %zu entries",
				      w->lim->max_entries);
	if ((error = hammer2_inode_meta(w->pfs, ent->inum, &meta, NULL)) != 0)
		return error;
	if ((e = ent_new(w)) == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	if ((error = arena_add(w, w->path, plen, &e->path_off)) != 0)
		return error;
	e->path_len = plen;
	e->inum = meta.inum;
	e->type = meta.type;
	e->mode = meta.mode;
	memcpy(&e->uid, &meta.uid.bytes[12], sizeof(e->uid));
	memcpy(&e->gid, &meta.gid.bytes[12], sizeof(e->gid));
	e->size = meta.size;
	e->mtime = meta.mtime;
	e->nlinks = meta.nlinks;
	switch (meta.type) {
	case HAMMER2_OBJTYPE_REGFILE:
		return digest_file(w, ent->inum, meta.size, &e->digest);
	case HAMMER2_OBJTYPE_SOFTLINK:
		error = hammer2_file_readlink(w->pfs, ent->inum, w->target,
					      &tlen);
		if (error == 0)
			error = arena_add(w, w->target, tlen, &e->target_off);
		e->target_len = tlen;
		return error;
	default:
		return 0;
	}
}

/*
 * Every entry below directory dinum, whose path is w->path[0..plen).  An
 * error is prefixed once, with the path where it was met.
 */
static int
digest_dir(struct digest_walk *w, hammer2_tid_t dinum, size_t plen, int depth)
{
	hammer2_dirent_t *ents = NULL;
	const hammer2_dirent_t *ent;
	size_t i, n, count = 0;
	int error;

	if (depth >= HAMMER2_DIGEST_MAXDEPTH)
		error = hammer2_seterr(ELOOP, "more than %d directory levels",
				       HAMMER2_DIGEST_MAXDEPTH);
	else
		error = hammer2_dir_entries(w->pfs, dinum, &ents, &count);
	if (error) {
		free(ents);
		return hammer2_preerr(error, "%.*s", plen ? (int)plen : 1,
				      plen ? w->path : "/");
	}
	for (i = 0; i < count; ++i) {
		ent = &ents[i];
		KKASSERT(ent->namlen > 0 && ent->namlen <= HAMMER2_NAME_MAX);
		n = plen + 1 + ent->namlen;
		KKASSERT(n < sizeof(w->path));
		w->path[plen] = '/';
		memcpy(w->path + plen + 1, ent->name, ent->namlen);
		if ((error = digest_entry(w, ent, n)) != 0) {
			hammer2_preerr(error, "%.*s", (int)n, w->path);
			break;
		}
		if (w->tree->ents[w->tree->count - 1].type ==
		    HAMMER2_OBJTYPE_DIRECTORY &&
		    (error = digest_dir(w, ent->inum, n, depth + 1)) != 0)
			break;
	}
	free(ents);
	return error;
}

int
hammer2_digest_tree(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		    const hammer2_digest_limits_t *lim,
		    hammer2_digest_tree_t *tree)
{
	struct digest_walk *w;
	int error;

	memset(tree, 0, sizeof(*tree));
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	w->pfs = pfs;
	w->tree = tree;
	w->lim = lim;
	w->buf = malloc(DIGEST_CHUNK);
	w->xs = XXH3_createState();
	if (w->buf == NULL || w->xs == NULL)
		error = hammer2_seterr(ENOMEM, "out of memory");
	else
		error = digest_dir(w, dinum, 0, 0);
	XXH3_freeState(w->xs);
	free(w->buf);
	free(w);
	if (error)
		hammer2_digest_tree_free(tree);
	return error;
}

uint64_t
hammer2_digest_bytes(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}

/* Once, after a hammer2_digest_tree that succeeded (a failed one frees). */
void
hammer2_digest_tree_free(hammer2_digest_tree_t *tree)
{
	free(tree->ents);
	free(tree->arena);
}
