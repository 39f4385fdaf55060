/*
 * Logical checks of a header copy's volume tree, made during the fsck
 * blockref walk: every blockref's keybits and key range against its
 * parent and siblings (what chain lookups rely on), every inode's fields,
 * the inode index (each entry holds the inode it is keyed by), every
 * directory entry's name and hash key, and every data block's encoding
 * (what a file read decodes).  Then, on the header copy in use, the
 * namespace of each PFS through the read functions (hammer2_fsck_names.c).
 *
 * Each block's role follows from its place: the volume root holds the
 * super-root, which holds the PFS roots; a PFS root holds the inode index
 * and its own directory entries, a directory holds entries, a file or
 * symlink holds data.  Indirect blocks take their parent's role.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

enum role {
	ROLE_NONE,		/* holds nothing */
	ROLE_VOLUME,		/* holds the super-root */
	ROLE_SUPROOT,		/* holds PFS root inodes */
	ROLE_PFSROOT,		/* the inode index and the root's entries */
	ROLE_DIR,		/* directory entries */
	ROLE_FILE		/* data blocks */
};

struct level {
	const hammer2_blockref_t *bref;
	const void		*data;		/* its media (NULL: none) */
	hammer2_off_t		off;
	enum role		role;		/* what its children are */
	const hammer2_inode_meta_t *owner;	/* inode whose subtree it is */
	hammer2_key_t		prev_end;	/* last child's range, for order */
	int			have_prev;
};

struct tree {
	hammer2_fsck_tree_t	*r;
	char			pfs[HAMMER2_INODE_MAXNAME + 1];
	struct level		lv[HAMMER2_CHAIN_DEPTH_MAX + 2];
	uint8_t			buf[HAMMER2_PBUFSIZE];
};

static void
emit(hammer2_fsck_tree_t *r, const char *msg)
{
	if (r->report == NULL || r->nreported >= HAMMER2_FSCK_REPORT_MAX)
		return;
	r->report(r->arg, msg);
	++r->nreported;
}

/* Count a problem and report it (the first HAMMER2_FSCK_REPORT_MAX). */
void
hammer2_fsck_report(hammer2_fsck_tree_t *r, const char *fmt, ...)
{
	char msg[640];
	va_list ap;

	++r->problems;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(r, msg);
}

static hammer2_off_t
media_off(const struct level *parent, const hammer2_blockref_t *bref)
{
	return parent->off + (hammer2_off_t)((const char *)bref -
					     (const char *)parent->data);
}

/* Report a problem of the blockref (at its slot in the parent block). */
static void
bad(struct tree *t, const struct level *parent,
    const hammer2_blockref_t *bref, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	hammer2_fsck_report(t->r, "PFS %s: inode 0x%llx: %s blockref key 0x%llx "
			    "at 0x%llx: %s", t->pfs[0] ? t->pfs : "(super-root)",
			    (unsigned long long)(parent->owner ?
						 parent->owner->inum : 0),
			    hammer2_bref_type_name(bref->type),
			    (unsigned long long)bref->key,
			    (unsigned long long)media_off(parent, bref), what);
}

static int
objtype_known(int type)
{
	switch (type) {
	case HAMMER2_OBJTYPE_DIRECTORY:
	case HAMMER2_OBJTYPE_REGFILE:
	case HAMMER2_OBJTYPE_FIFO:
	case HAMMER2_OBJTYPE_CDEV:
	case HAMMER2_OBJTYPE_BDEV:
	case HAMMER2_OBJTYPE_SOFTLINK:
	case HAMMER2_OBJTYPE_SOCKET:
		return 1;
	default:
		return 0;
	}
}

/* Keys and keybits: what lookups and file reads need to find things. */
static void
check_keys(struct tree *t, struct level *parent, const hammer2_blockref_t *bref)
{
	const hammer2_blockref_t *pb = parent->bref;
	hammer2_key_t end = hammer2_bref_key_end(bref);

	if (bref->keybits > 64) {
		bad(t, parent, bref, "keybits %d exceed 64", bref->keybits);
		return;
	}
	if (parent->have_prev && bref->key <= parent->prev_end)
		bad(t, parent, bref, "overlaps or is out of order with the "
		    "blockref before it");
	parent->prev_end = end;
	parent->have_prev = 1;
	if (pb->type == HAMMER2_BREF_TYPE_INDIRECT &&
	    (bref->key < pb->key || end > hammer2_bref_key_end(pb)))
		bad(t, parent, bref, "key range 0x%llx-0x%llx outside its "
		    "indirect block's 0x%llx-0x%llx",
		    (unsigned long long)bref->key, (unsigned long long)end,
		    (unsigned long long)pb->key,
		    (unsigned long long)hammer2_bref_key_end(pb));
	switch (bref->type) {
	case HAMMER2_BREF_TYPE_INODE:
	case HAMMER2_BREF_TYPE_DIRENT:
		if (bref->keybits != 0)
			bad(t, parent, bref, "keybits %d, not 0", bref->keybits);
		break;
	case HAMMER2_BREF_TYPE_INDIRECT:
		if (bref->keybits < 64 &&
		    (bref->key & ((1ULL << bref->keybits) - 1)))
			bad(t, parent, bref, "key not aligned to keybits %d",
			    bref->keybits);
		break;
	case HAMMER2_BREF_TYPE_DATA:
		if (bref->keybits < HAMMER2_RADIX_MIN ||
		    bref->keybits > HAMMER2_RADIX_MAX ||
		    (bref->key & ((1ULL << bref->keybits) - 1)))
			bad(t, parent, bref, "data keybits %d (key not a "
			    "block of 2^%d..2^%d bytes)", bref->keybits,
			    HAMMER2_RADIX_MIN, HAMMER2_RADIX_MAX);
		break;
	}
}

/* Whether a blockref of this type may sit where its parent's role says. */
static int
type_fits(enum role role, const hammer2_blockref_t *bref)
{
	if (bref->type == HAMMER2_BREF_TYPE_INDIRECT)
		return role != ROLE_NONE && role != ROLE_VOLUME;
	switch (role) {
	case ROLE_VOLUME:
	case ROLE_SUPROOT:
		return bref->type == HAMMER2_BREF_TYPE_INODE;
	case ROLE_PFSROOT:
		return (bref->type == HAMMER2_BREF_TYPE_INODE &&
			!(bref->key & HAMMER2_DIRHASH_VISIBLE)) ||
		       (bref->type == HAMMER2_BREF_TYPE_DIRENT &&
			(bref->key & HAMMER2_DIRHASH_VISIBLE));
	case ROLE_DIR:
		return bref->type == HAMMER2_BREF_TYPE_DIRENT &&
		       (bref->key & HAMMER2_DIRHASH_VISIBLE);
	case ROLE_FILE:
		return bref->type == HAMMER2_BREF_TYPE_DATA;
	default:
		return 0;
	}
}

static enum role
inode_role(enum role parent, const hammer2_inode_meta_t *meta)
{
	if (parent == ROLE_VOLUME)
		return ROLE_SUPROOT;
	if (parent == ROLE_SUPROOT)
		return ROLE_PFSROOT;
	switch (meta->type) {
	case HAMMER2_OBJTYPE_DIRECTORY:
		return ROLE_DIR;
	case HAMMER2_OBJTYPE_REGFILE:
	case HAMMER2_OBJTYPE_SOFTLINK:
		return ROLE_FILE;
	default:
		return ROLE_NONE;
	}
}

static void
check_inode(struct tree *t, struct level *parent,
	    const hammer2_blockref_t *bref, const hammer2_inode_data_t *ip)
{
	const hammer2_inode_meta_t *m = &ip->meta;

	if (parent->role == ROLE_SUPROOT) {	/* a PFS root: name the PFS */
		size_t n = m->name_len < HAMMER2_INODE_MAXNAME ? m->name_len :
			   HAMMER2_INODE_MAXNAME;

		memcpy(t->pfs, ip->filename, n);
		t->pfs[n] = 0;
	}
	if (parent->role == ROLE_PFSROOT && m->inum != bref->key)
		bad(t, parent, bref, "inode index entry 0x%llx holds inode "
		    "0x%llx", (unsigned long long)bref->key,
		    (unsigned long long)m->inum);
	if (!objtype_known(m->type))
		bad(t, parent, bref, "inode 0x%llx has unknown type %d",
		    (unsigned long long)m->inum, m->type);
	if (m->name_len > HAMMER2_INODE_MAXNAME)
		bad(t, parent, bref, "inode 0x%llx name length %d exceeds %d",
		    (unsigned long long)m->inum, m->name_len,
		    HAMMER2_INODE_MAXNAME);
	if (m->type == HAMMER2_OBJTYPE_DIRECTORY)
		return;
	if (m->size > (hammer2_off_t)INT64_MAX)
		bad(t, parent, bref, "inode 0x%llx size %llu exceeds any file "
		    "offset", (unsigned long long)m->inum,
		    (unsigned long long)m->size);
	if ((m->op_flags & HAMMER2_OPFLAG_DIRECTDATA) &&
	    m->size > HAMMER2_EMBEDDED_BYTES)
		bad(t, parent, bref, "inode 0x%llx embedded data of %llu bytes "
		    "exceeds %d", (unsigned long long)m->inum,
		    (unsigned long long)m->size, HAMMER2_EMBEDDED_BYTES);
}

static void
check_dirent(struct tree *t, struct level *parent,
	     const hammer2_blockref_t *bref, const void *data, int bytes)
{
	size_t len = bref->embed.dirent.namlen;
	const uint8_t *name;
	hammer2_key_t hash;

	if (len <= sizeof(bref->check.buf)) {
		name = (const uint8_t *)bref->check.buf;
	} else if (data != NULL && (size_t)bytes >= len) {
		name = data;
	} else {
		bad(t, parent, bref, "name of %zu bytes has no block holding "
		    "it", len);
		return;
	}
	if (hammer2_name_validate(name, len)) {
		bad(t, parent, bref, "invalid entry name '%.*s' (%zu bytes): %s",
		    (int)(len > 255 ? 255 : len), name, len, hammer2_errmsg());
		return;
	}
	hash = hammer2_dirhash(name, len);
	if ((bref->key & ~HAMMER2_DIRHASH_LOMASK) != hash)
		bad(t, parent, bref, "entry '%.*s' is not keyed by its name's "
		    "hash 0x%llx", (int)len, name, (unsigned long long)hash);
}

/* What a file read decodes: every data block must decompress. */
static void
check_data(struct tree *t, struct level *parent,
	   const hammer2_blockref_t *bref, const void *data, int bytes)
{
	const hammer2_inode_meta_t *m = parent->owner;
	size_t out;

	if (m && bref->key >= m->size)
		bad(t, parent, bref, "data block past the end of inode 0x%llx "
		    "(size %llu)", (unsigned long long)m->inum,
		    (unsigned long long)m->size);
	if (data == NULL || bref->keybits > HAMMER2_RADIX_MAX)
		return;
	if (hammer2_decompress(HAMMER2_DEC_COMP(bref->methods), data,
			       (size_t)bytes, t->buf, 1UL << bref->keybits,
			       &out))
		bad(t, parent, bref, "%s", hammer2_errmsg());
}

static int
tree_cb(void *arg, int depth, const hammer2_blockref_t *bref,
	const void *data, int bytes, int error)
{
	struct tree *t = arg;
	struct level *parent, *lv;

	if (error)			/* the walk counts it */
		emit(t->r, hammer2_errmsg());
	if (t->r->map &&		/* stops the walk out of memory */
	    hammer2_blockmap_extent(t->r->map, depth, bref, data, bytes, error))
		return 1;
	if (depth > HAMMER2_CHAIN_DEPTH_MAX)
		return 0;
	lv = &t->lv[depth];
	*lv = (struct level){ .bref = bref, .data = data,
			      .off = bref->data_off & HAMMER2_OFF_MASK };
	if (depth == 0) {
		lv->role = ROLE_VOLUME;
		return 0;
	}
	parent = &t->lv[depth - 1];
	if (parent->role == ROLE_VOLUME || parent->role == ROLE_SUPROOT)
		t->pfs[0] = 0;		/* until a PFS root names it */
	lv->owner = parent->owner;
	lv->role = parent->role;
	check_keys(t, parent, bref);
	if (!type_fits(parent->role, bref)) {
		bad(t, parent, bref, "unexpected here");
		lv->role = ROLE_NONE;
		return 0;
	}
	switch (bref->type) {
	case HAMMER2_BREF_TYPE_INODE:
		if (data == NULL)
			break;
		check_inode(t, parent, bref, data);
		lv->owner = &((const hammer2_inode_data_t *)data)->meta;
		lv->role = inode_role(parent->role, lv->owner);
		break;
	case HAMMER2_BREF_TYPE_DIRENT:
		check_dirent(t, parent, bref, data, bytes);
		break;
	case HAMMER2_BREF_TYPE_DATA:
		check_data(t, parent, bref, data, bytes);
		break;
	}
	return 0;
}

/*
 * fsck's walk of header copy `zone`: check codes and the logical checks
 * above (and, with r->map, the blocks referenced, for the freemap check),
 * then (on the copy in use) each PFS's namespace.  Returns an errno only
 * when the walk could not start; problems are counted and reported.
 */
int
hammer2_fsck_tree(hammer2_dev_t *hmp, int zone, hammer2_fsck_tree_t *r)
{
	struct tree *t = calloc(1, sizeof(*t));
	int error;

	if (t == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	t->r = r;
	error = hammer2_walk_zone(hmp, zone, 0, tree_cb, t, &r->stats);
	free(t);
	if (error == EIO && r->stats.errors)	/* reported per block */
		error = 0;
	r->problems += r->stats.errors;
	if (error == 0 && zone == hmp->volhdrno)
		hammer2_fsck_names(hmp, r);
	return error;
}
