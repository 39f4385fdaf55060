/*
 * Directory listing for the FUSE server: readdir and readdirplus over
 * hammer2_dir_readdir_at, with offsets that survive modifications.
 */
#include <string.h>
#include "hammer2_fuse_priv.h"

/*
 * readdir offsets: 1 after ".", 2 after "..", then an entry's directory
 * key without the visible bit, plus one: where the next call resumes, so
 * offsets stay valid across calls and modifications.  Real keys have bit
 * 15 set (never collide with 1 and 2); a hostile key cannot make a scan
 * go backwards.
 */
#define OFF_END		INT64_MAX

static off_t
dir_cookie(hammer2_key_t key)
{
	hammer2_key_t k = key & ~HAMMER2_DIRHASH_VISIBLE;

	if (k >= OFF_END - 1)
		return OFF_END;
	return k + 1 < 3 ? 3 : (off_t)(k + 1);
}

/*
 * One listing.  readdirplus hands the kernel each entry's attributes too
 * (no lookup per name for ls -l, cp -a, find): the entries are gathered
 * during the directory scan and their inodes read after it, so no inode
 * lookup runs inside the scan.
 */
struct readdir_ent {
	fuse_ino_t	ino;
	mode_t		type;
	off_t		next;
	char		name[HAMMER2_INODE_MAXNAME + 1];
};

struct readdir_ctx {
	hammer2_fuse_t		*f;
	fuse_req_t		req;
	int			plus;
	size_t			size;		/* the kernel's buffer */
	size_t			used;
	struct readdir_ent	*ents;
	size_t			nents;
	size_t			maxents;
};

static int
add_entry(struct readdir_ctx *c, const char *name, fuse_ino_t ino, mode_t type,
	  off_t next)
{
	struct readdir_ent *e;
	size_t n;

	n = c->plus ? fuse_add_direntry_plus(c->req, NULL, 0, name, NULL, 0) :
		      fuse_add_direntry(c->req, NULL, 0, name, NULL, 0);
	if (n > c->size - c->used || c->nents == c->maxents)
		return 1;	/* full: the rest on the next call */
	c->used += n;
	e = &c->ents[c->nents++];
	e->ino = ino;
	e->type = type;
	e->next = next;
	snprintf(e->name, sizeof(e->name), "%s", name);
	return 0;
}

static int
readdir_cb(void *arg, const hammer2_dirent_t *ent)
{
	struct readdir_ctx *c = arg;
	char name[HAMMER2_INODE_MAXNAME + 1];

	memcpy(name, ent->name, ent->namlen);
	name[ent->namlen] = 0;
	return add_entry(c, name, swap_root(c->f, ent->inum),
			 type_bits(ent->type), dir_cookie(ent->key));
}

/* The gathered entries in the kernel's format (inside the transaction). */
static size_t
readdir_fill(struct readdir_ctx *c, char *buf)
{
	struct fuse_entry_param e;
	size_t used = 0;

	for (size_t i = 0; i < c->nents; ++i) {
		struct readdir_ent *d = &c->ents[i];
		int dot = !strcmp(d->name, ".") || !strcmp(d->name, "..");

		if (!c->plus) {
			memset(&e.attr, 0, sizeof(e.attr));
			e.attr.st_ino = d->ino;
			e.attr.st_mode = d->type;
			used += fuse_add_direntry(c->req, buf + used,
						  c->size - used, d->name,
						  &e.attr, d->next);
			continue;
		}
		/* no attributes (dots, unreadable inodes): a plain name */
		if (dot || hammer2_fuse_entry_fill(c->f, d->ino, &e) != 0) {
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = d->ino;
			e.attr.st_mode = d->type;
		}
		used += fuse_add_direntry_plus(c->req, buf + used,
					       c->size - used, d->name, &e,
					       d->next);
	}
	return used;
}

static void
do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	hammer2_fuse_t *f = FS(req);
	struct readdir_ctx c = { f, req, plus, size, 0, NULL, 0, 0 };
	hammer2_inode_meta_t m;
	char *buf;
	size_t lead, used = 0;
	int error;

	/*
	 * The smallest entry takes 24 bytes (readdirplus more); the entries
	 * go after the reply in the worker's buffer.
	 */
	c.maxents = size / 24 + 2;
	lead = (size + _Alignof(struct readdir_ent) - 1) &
	       ~(_Alignof(struct readdir_ent) - 1);
	if ((buf = hammer2_fuse_scratch(lead + c.maxents *
					sizeof(*c.ents))) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	c.ents = (struct readdir_ent *)(buf + lead);
	rbegin(f);
	error = hammer2_inode_meta(f->pfs, swap_root(f, ino), &m, NULL);
	if (error == 0 && m.type != HAMMER2_OBJTYPE_DIRECTORY)
		error = ENOTDIR;
	if (error == 0 && off < 1 && add_entry(&c, ".", ino, S_IFDIR, 1))
		goto done;
	if (error == 0 && off < 2 &&
	    add_entry(&c, "..", swap_root(f, m.iparent ? m.iparent : m.inum),
		      S_IFDIR, 2))
		goto done;
	if (error == 0 && off != OFF_END)
		error = hammer2_dir_readdir_at(f->pfs, swap_root(f, ino),
					       off < 3 ? 0 : (hammer2_key_t)off,
					       readdir_cb, &c);
done:
	if (error == 0)
		used = readdir_fill(&c, buf);
	rend(f);
	if (error)
		reply_err(req, error);
	else
		fuse_reply_buf(req, buf, used);
}

void
hammer2_fuse_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, 0);
}

void
hammer2_fuse_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, 1);
}
