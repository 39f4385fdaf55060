/*
 * A PFS as a kernel filesystem: libfuse3 low-level operations over the
 * PFS API (hammer2_inode_*, hammer2_dir_*, hammer2_file_*).  No in-memory
 * inode table: a FUSE inode number is the HAMMER2 inode number, which is
 * never reused, so lookup counts need no bookkeeping.
 */
#define _GNU_SOURCE		/* RENAME_NOREPLACE */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include "hammer2_fuse_priv.h"

static int
objtype(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:	return HAMMER2_OBJTYPE_DIRECTORY;
	case S_IFREG:	return HAMMER2_OBJTYPE_REGFILE;
	case S_IFIFO:	return HAMMER2_OBJTYPE_FIFO;
	case S_IFCHR:	return HAMMER2_OBJTYPE_CDEV;
	case S_IFBLK:	return HAMMER2_OBJTYPE_BDEV;
	case S_IFLNK:	return HAMMER2_OBJTYPE_SOFTLINK;
	case S_IFSOCK:	return HAMMER2_OBJTYPE_SOCKET;
	}
	return HAMMER2_OBJTYPE_UNKNOWN;
}

static void
us_to_ts(uint64_t us, struct timespec *ts)
{
	ts->tv_sec = (time_t)(us / 1000000);
	ts->tv_nsec = (long)(us % 1000000) * 1000;
}

static uint64_t
ts_to_us(const struct timespec *ts)
{
	if (ts->tv_sec < 0)
		return 0;
	return (uint64_t)ts->tv_sec * 1000000 + (uint64_t)ts->tv_nsec / 1000;
}

/* stat of FUSE inode ino (inside a transaction). */
static int
inode_stat(hammer2_fuse_t *f, fuse_ino_t ino, struct stat *st)
{
	hammer2_inode_meta_t m;
	hammer2_blockref_t bref;
	int error;

	error = hammer2_inode_meta(f->pfs, swap_root(f, ino), &m, &bref);
	if (error)
		return error;
	memset(st, 0, sizeof(*st));
	st->st_mode = type_bits(m.type);
	if (st->st_mode == 0)
		return hammer2_seterr(EIO, "inode 0x%llx: unknown type %d",
				      (unsigned long long)swap_root(f, ino),
				      m.type);
	st->st_ino = ino;
	st->st_mode |= m.mode & 07777;
	st->st_nlink = (nlink_t)m.nlinks;
	st->st_uid = hammer2_uuid_xid(&m.uid);
	st->st_gid = hammer2_uuid_xid(&m.gid);
	st->st_rdev = makedev(m.rmajor, m.rminor);
	st->st_size = (off_t)m.size;
	st->st_blksize = HAMMER2_PBUFSIZE;
	st->st_blocks = (blkcnt_t)((hammer2_inode_data_bytes(&m, &bref) + 511) /
				   512);
	us_to_ts(m.atime, &st->st_atim);
	us_to_ts(m.mtime, &st->st_mtim);
	us_to_ts(m.ctime, &st->st_ctim);
	return 0;
}

int
hammer2_fuse_entry_fill(hammer2_fuse_t *f, fuse_ino_t ino,
			struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->generation = 1;
	e->attr_timeout = ATTR_TIMEOUT;
	e->entry_timeout = ENTRY_TIMEOUT;
	return inode_stat(f, ino, &e->attr);
}

static int
name_check(const char *name)
{
	return strlen(name) >= HAMMER2_INODE_MAXNAME ? ENAMETOOLONG : 0;
}

/* ------------------------------------------------------ open files */

static struct open_ent **
open_find(hammer2_fuse_t *f, hammer2_tid_t inum)
{
	struct open_ent **pp = &f->opens[inum % OPEN_HASH];

	while (*pp && (*pp)->inum != inum)
		pp = &(*pp)->next;
	return pp;
}

/*
 * Inside a transaction that found inum alive: an unlink, exclusive, comes
 * before (the caller saw no inode) or after, and then keeps it for us.
 */
static int
open_ref(hammer2_fuse_t *f, hammer2_tid_t inum)
{
	struct open_ent **pp;

	pthread_mutex_lock(&f->olock);
	pp = open_find(f, inum);
	if (*pp == NULL) {
		/* closed entries are kept for the next opens */
		if ((*pp = f->ofree) != NULL)
			f->ofree = f->ofree->next;
		else
			*pp = malloc(sizeof(**pp));
		if (*pp != NULL)
			**pp = (struct open_ent){ .inum = inum };
	}
	if (*pp)
		++(*pp)->opens;
	pthread_mutex_unlock(&f->olock);
	return *pp ? 0 : ENOMEM;
}

/* pfs->keep_unlinked, inside the unlink's exclusive transaction. */
static int
keep_unlinked(void *arg, hammer2_tid_t inum)
{
	hammer2_fuse_t *f = arg;
	struct open_ent *e;

	pthread_mutex_lock(&f->olock);
	if ((e = *open_find(f, inum)) != NULL)
		e->unlinked = 1;
	pthread_mutex_unlock(&f->olock);
	return e != NULL;
}

static void
open_free(struct open_ent **list)
{
	struct open_ent *e;

	while ((e = *list) != NULL) {
		*list = e->next;
		free(e);
	}
}

/* The last close of an unlinked inode destroys it. */
static void
open_unref(hammer2_fuse_t *f, hammer2_tid_t inum)
{
	struct open_ent **pp, *e;
	hammer2_inode_meta_t m;
	int unlinked = 0;

	pthread_mutex_lock(&f->olock);
	pp = open_find(f, inum);
	if ((e = *pp) != NULL && --e->opens == 0) {
		*pp = e->next;
		unlinked = e->unlinked;
		e->next = f->ofree;
		f->ofree = e;
	}
	pthread_mutex_unlock(&f->olock);
	if (!unlinked ||
	    hammer2_fuse_wbegin(f, 0, HAMMER2_SPACE_CHANGES) != 0)
		return;
	/* reopened meanwhile (/proc/PID/fd), or linked again: it stays, and
	 * the new opener's last close must try again */
	pthread_mutex_lock(&f->olock);
	if ((e = *open_find(f, inum)) != NULL)
		e->unlinked = 1;
	pthread_mutex_unlock(&f->olock);
	if (e == NULL && hammer2_inode_meta(f->pfs, inum, &m, NULL) == 0 &&
	    m.nlinks == 0 && hammer2_inode_destroy(f->pfs, inum) != 0)
		fprintf(stderr, "pyh2 mount: %s\n", hammer2_errmsg());
	hammer2_fuse_wend(f);
}

/* ------------------------------------------------------ operations */

static void
h2_destroy(void *userdata)
{
	hammer2_fuse_final_commit(userdata);
}

static void
h2_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	hammer2_fuse_t *f = FS(req);
	struct fuse_entry_param e;
	hammer2_dirent_t ent;
	int error;

	if ((error = name_check(name)) != 0) {
		reply_err(req, error);
		return;
	}
	rbegin(f);
	error = hammer2_dir_lookup(f->pfs, swap_root(f, parent),
				   (const uint8_t *)name, strlen(name), &ent);
	if (error == 0)
		error = hammer2_fuse_entry_fill(f, swap_root(f, ent.inum), &e);
	rend(f);
	if (error == ENOENT) {
		/* a negative entry: the kernel may cache the absence */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = ENTRY_TIMEOUT;
		fuse_reply_entry(req, &e);
	} else if (error) {
		reply_err(req, error);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void
h2_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	hammer2_fuse_t *f = FS(req);
	struct stat st;
	int error;

	rbegin(f);
	error = inode_stat(f, ino, &st);
	rend(f);
	if (error)
		reply_err(req, error);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void
h2_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
	   struct fuse_file_info *fi)
{
	hammer2_fuse_t *f = FS(req);
	hammer2_tid_t inum = swap_root(f, ino);
	hammer2_attr_t a;
	struct stat st;
	uint64_t now;
	int error;

	if ((error = hammer2_fuse_wbegin(f, 0, HAMMER2_SPACE_CHANGES)) != 0) {
		reply_err(req, error);
		return;
	}
	now = hammer2_time_now();
	memset(&a, 0, sizeof(a));
	if (to_set & FUSE_SET_ATTR_MODE) {
		a.mask |= HAMMER2_SETATTR_MODE;
		a.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		a.mask |= HAMMER2_SETATTR_UID;
		a.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		a.mask |= HAMMER2_SETATTR_GID;
		a.gid = attr->st_gid;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		a.mask |= HAMMER2_SETATTR_ATIME;
		a.atime = (to_set & FUSE_SET_ATTR_ATIME_NOW) ?
			  now : ts_to_us(&attr->st_atim);
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		a.mask |= HAMMER2_SETATTR_MTIME;
		a.mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW) ?
			  now : ts_to_us(&attr->st_mtim);
	} else if (to_set & FUSE_SET_ATTR_SIZE) {	/* truncate(2) */
		a.mask |= HAMMER2_SETATTR_MTIME;
		a.mtime = now;
	}
	/* every change setattr makes moves ctime, at the operation's time */
	a.mask |= HAMMER2_SETATTR_CTIME;
	a.ctime = (to_set & FUSE_SET_ATTR_CTIME) ? ts_to_us(&attr->st_ctim) :
						    now;
	if ((to_set & FUSE_SET_ATTR_SIZE) &&
	    (error = hammer2_fuse_dirty(f, ino)) == 0)
		error = hammer2_file_truncate(f->pfs, inum,
					      (hammer2_off_t)attr->st_size);
	if (error == 0)
		error = hammer2_inode_setattr(f->pfs, inum, &a);
	if (error == 0)
		error = inode_stat(f, ino, &st);
	hammer2_fuse_wend(f);
	if (error)
		reply_err(req, error);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void
h2_readlink(fuse_req_t req, fuse_ino_t ino)
{
	hammer2_fuse_t *f = FS(req);
	char buf[HAMMER2_SYMLINK_MAX + 1];
	size_t len;
	int error;

	rbegin(f);
	error = hammer2_file_readlink(f->pfs, swap_root(f, ino), buf, &len);
	rend(f);
	if (error) {
		reply_err(req, error);
		return;
	}
	fuse_reply_readlink(req, buf);
}

/*
 * Create name in parent: the common part of mknod/mkdir/create/symlink;
 * `opens` also opens the new inode.
 */
static int
make_node(fuse_req_t req, fuse_ino_t parent, const char *name, int type,
	  mode_t mode, dev_t rdev, const char *target, int opens,
	  struct fuse_entry_param *e)
{
	hammer2_fuse_t *f = FS(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	hammer2_inode_meta_t pm;
	hammer2_attr_t a;
	hammer2_tid_t inum = 0;
	size_t tlen = target ? strlen(target) : 0;
	int error;

	if ((error = name_check(name)) != 0)
		return error;
	if (tlen > HAMMER2_SYMLINK_MAX)
		return ENAMETOOLONG;
	memset(&a, 0, sizeof(a));
	a.type = (uint8_t)type;
	a.mode = mode & 07777;
	a.uid = ctx->uid;
	a.gid = ctx->gid;
	a.rmajor = major(rdev);
	a.rminor = minor(rdev);
	if ((error = hammer2_fuse_wbegin(f, tlen, HAMMER2_SPACE_GROWS)) != 0)
		return error;
	/* one time for the creation and a symlink's target write */
	a.mask = HAMMER2_SETATTR_CTIME;
	a.ctime = hammer2_time_now();
	/* a setgid directory hands down its group (and, to directories, the bit) */
	error = hammer2_inode_meta(f->pfs, swap_root(f, parent), &pm, NULL);
	if (error == 0 && (pm.mode & S_ISGID)) {
		a.gid = hammer2_uuid_xid(&pm.gid);
		if (type == HAMMER2_OBJTYPE_DIRECTORY)
			a.mode |= S_ISGID;
	}
	if (error == 0)
		error = hammer2_inode_create(f->pfs, swap_root(f, parent),
					     (const uint8_t *)name,
					     strlen(name), &a, &inum);
	if (error == 0 && tlen &&
	    (error = hammer2_fuse_dirty(f, swap_root(f, inum))) == 0) {
		error = hammer2_file_write(f->pfs, inum, 0, target, tlen);
		/* the target write keeps the creation's time */
		a.mask = HAMMER2_SETATTR_MTIME | HAMMER2_SETATTR_CTIME;
		a.mtime = a.ctime;
		if (error == 0)
			error = hammer2_inode_setattr(f->pfs, inum, &a);
	}
	if (error == 0)
		error = hammer2_fuse_entry_fill(f, swap_root(f, inum), e);
	if (error == 0 && opens)
		error = open_ref(f, inum);
	hammer2_fuse_wend(f);
	return error;
}

static void
reply_made(fuse_req_t req, int error, struct fuse_entry_param *e)
{
	if (error)
		reply_err(req, error);
	else
		fuse_reply_entry(req, e);
}

static void
h2_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	 dev_t rdev)
{
	struct fuse_entry_param e;
	int type = objtype(mode);

	if (type == HAMMER2_OBJTYPE_UNKNOWN ||
	    type == HAMMER2_OBJTYPE_DIRECTORY ||
	    type == HAMMER2_OBJTYPE_SOFTLINK) {
		reply_err(req, EINVAL);
		return;
	}
	reply_made(req, make_node(req, parent, name, type, mode, rdev, NULL,
				  0, &e), &e);
}

static void
h2_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fuse_entry_param e;

	reply_made(req, make_node(req, parent, name, HAMMER2_OBJTYPE_DIRECTORY,
				  mode, 0, NULL, 0, &e), &e);
}

static void
h2_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
	   const char *name)
{
	struct fuse_entry_param e;

	reply_made(req, make_node(req, parent, name, HAMMER2_OBJTYPE_SOFTLINK,
				  0777, 0, link, 0, &e), &e);
}

static void
h2_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	  struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int error;

	error = make_node(req, parent, name, HAMMER2_OBJTYPE_REGFILE, mode, 0,
			  NULL, 1, &e);
	if (error) {
		reply_err(req, error);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_create(req, &e, fi);
}

static void
remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int isdir)
{
	hammer2_fuse_t *f = FS(req);
	int error;

	if ((error = name_check(name)) == 0 &&
	    (error = hammer2_fuse_wbegin(f, 0, HAMMER2_SPACE_CHANGES)) == 0) {
		error = hammer2_inode_unlink(f->pfs, swap_root(f, parent),
					     (const uint8_t *)name,
					     strlen(name), isdir);
		hammer2_fuse_wend(f);
	}
	fuse_reply_err(req, error);
}

static void
h2_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

static void
h2_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 1);
}

static void
h2_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	hammer2_fuse_t *f = FS(req);
	int error;

	/* RENAME_EXCHANGE (and anything newer) is not supported */
	if (flags & ~RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((error = name_check(name)) == 0 &&
	    (error = name_check(newname)) == 0 &&
	    (error = hammer2_fuse_wbegin(f, 0, HAMMER2_SPACE_CHANGES)) == 0) {
		error = hammer2_inode_rename(f->pfs, swap_root(f, parent),
					     (const uint8_t *)name, strlen(name),
					     swap_root(f, newparent),
					     (const uint8_t *)newname,
					     strlen(newname),
					     (flags & RENAME_NOREPLACE) ?
					     HAMMER2_RENAME_NOREPLACE : 0);
		hammer2_fuse_wend(f);
	}
	fuse_reply_err(req, error);
}

static void
h2_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	const char *newname)
{
	hammer2_fuse_t *f = FS(req);
	struct fuse_entry_param e;
	int error;

	if ((error = name_check(newname)) == 0 &&
	    (error = hammer2_fuse_wbegin(f, 0, HAMMER2_SPACE_GROWS)) == 0) {
		error = hammer2_inode_link(f->pfs, swap_root(f, ino),
					   swap_root(f, newparent),
					   (const uint8_t *)newname,
					   strlen(newname));
		if (error == 0)
			error = hammer2_fuse_entry_fill(f, ino, &e);
		hammer2_fuse_wend(f);
	}
	reply_made(req, error, &e);
}

static void
h2_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	hammer2_fuse_t *f = FS(req);
	hammer2_tid_t inum = swap_root(f, ino);
	hammer2_inode_meta_t m;
	int error;

	if ((f->flags & HAMMER2_FUSE_RDONLY) &&
	    (fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* libfuse asks for atomic O_TRUNC: the truncation is ours to do */
	if (fi->flags & O_TRUNC) {
		error = hammer2_fuse_wbegin(f, 0, HAMMER2_SPACE_CHANGES);
		if (error == 0) {
			if ((error = hammer2_fuse_dirty(f, ino)) == 0)
				error = hammer2_file_truncate(f->pfs, inum, 0);
			if (error == 0)
				error = open_ref(f, inum);
			hammer2_fuse_wend(f);
		}
	} else {
		rbegin(f);
		if ((error = hammer2_inode_meta(f->pfs, inum, &m, NULL)) == 0)
			error = open_ref(f, inum);
		rend(f);
	}
	if (error) {
		reply_err(req, error);
		return;
	}
	/* every change passes through this mount: cached pages stay valid */
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/*
 * Each worker thread keeps one buffer between its requests (no allocation,
 * no fresh pages per read or listing), freed when the thread exits.
 */
struct scratch {
	size_t		size;
	max_align_t	data[];
};

static pthread_key_t	scratch_key;
static pthread_once_t	scratch_once = PTHREAD_ONCE_INIT;
static int		scratch_error;

static void
scratch_init(void)
{
	scratch_error = pthread_key_create(&scratch_key, free);
}

void *
hammer2_fuse_scratch(size_t size)
{
	struct scratch *sc;

	pthread_once(&scratch_once, scratch_init);
	if (scratch_error)
		return NULL;
	sc = pthread_getspecific(scratch_key);
	if (sc == NULL || sc->size < size) {
		free(sc);
		pthread_setspecific(scratch_key, NULL);
		if ((sc = malloc(sizeof(*sc) + size)) == NULL)
			return NULL;
		sc->size = size;
		pthread_setspecific(scratch_key, sc);
	}
	return sc->data;
}

static void
h2_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	hammer2_fuse_t *f = FS(req);
	size_t done = 0;
	char *buf;
	int error;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((buf = hammer2_fuse_scratch(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rbegin(f);
	error = hammer2_file_read(f->pfs, swap_root(f, ino), (hammer2_off_t)off,
				  buf, size, &done);
	rend(f);
	if (error)
		reply_err(req, error);
	else
		fuse_reply_buf(req, buf, done);
}

static void
h2_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	 off_t off, struct fuse_file_info *fi)
{
	hammer2_fuse_t *f = FS(req);
	int error;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((error = hammer2_fuse_wbegin(f, size, HAMMER2_SPACE_GROWS)) == 0) {
		if ((error = hammer2_fuse_dirty(f, ino)) == 0)
			error = hammer2_file_write(f->pfs, swap_root(f, ino),
						   (hammer2_off_t)off, buf,
						   size);
		hammer2_fuse_wend(f);
	}
	if (error)
		reply_err(req, error);
	else
		fuse_reply_write(req, size);
}

static void
h2_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	 struct fuse_file_info *fi)
{
	hammer2_fuse_t *f = FS(req);
	int error = 0;

	if (!(f->flags & HAMMER2_FUSE_RDONLY)) {
		hammer2_pfs_trans_begin(f->pfs, 1);
		error = hammer2_fuse_commit(f);
		hammer2_pfs_trans_end(f->pfs);
	}
	fuse_reply_err(req, error);
}

static void
h2_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	open_unref(FS(req), swap_root(FS(req), ino));
	fuse_reply_err(req, 0);
}

static void
h2_statfs(fuse_req_t req, fuse_ino_t ino)
{
	hammer2_fuse_t *f = FS(req);
	uint64_t size = UINT64_MAX, avail;
	struct statvfs sv;

	/* a cluster holds what its smallest, fullest node holds */
	rbegin(f);
	for (int i = 0; i < f->pfs->ndevs; ++i) {
		if (f->pfs->devs[i]->voldata->allocator_size < size)
			size = f->pfs->devs[i]->voldata->allocator_size;
	}
	avail = hammer2_space_avail(f->pfs);
	rend(f);
	if (avail > size)
		avail = size;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = HAMMER2_PBUFSIZE;
	sv.f_frsize = HAMMER2_PBUFSIZE;
	sv.f_blocks = size / HAMMER2_PBUFSIZE;
	sv.f_bfree = avail / HAMMER2_PBUFSIZE;
	sv.f_bavail = sv.f_bfree;
	/* an inode takes 1 KiB of the same space */
	sv.f_files = size / HAMMER2_INODE_BYTES;
	sv.f_ffree = avail / HAMMER2_INODE_BYTES;
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/*
 * What is left out libfuse answers itself: forget, opendir and releasedir
 * need nothing here (inode numbers are never reused, so lookup counts need
 * no bookkeeping).  No extended attributes: ENOSYS makes the kernel answer
 * EOPNOTSUPP from then on without asking again, which also spares each
 * write its security.capability query.
 */
static const struct fuse_lowlevel_ops h2_ops = {
	.destroy	= h2_destroy,
	.lookup		= h2_lookup,
	.getattr	= h2_getattr,
	.setattr	= h2_setattr,
	.readlink	= h2_readlink,
	.mknod		= h2_mknod,
	.mkdir		= h2_mkdir,
	.unlink		= h2_unlink,
	.rmdir		= h2_rmdir,
	.symlink	= h2_symlink,
	.rename		= h2_rename,
	.link		= h2_link,
	.open		= h2_open,
	.read		= h2_read,
	.write		= h2_write,
	.release	= h2_release,
	.fsync		= h2_fsync,
	.readdir	= hammer2_fuse_readdir,
	.readdirplus	= hammer2_fuse_readdirplus,
	.fsyncdir	= h2_fsync,
	.statfs		= h2_statfs,
	.create		= h2_create,
};

/* -------------------------------------------------------- session */

/* fsname=... with the option separators in the name escaped. */
static char *
mount_opts(const char *fsname, const char *options, int flags)
{
	size_t len = strlen(fsname) * 2 + (options ? strlen(options) : 0) + 96;
	char *buf = malloc(len), *p;

	if (buf == NULL)
		return NULL;
	p = buf + sprintf(buf, "fsname=");
	for (const char *s = fsname; *s; ++s) {
		if (*s == ',' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	p += sprintf(p, ",subtype=hammer2,default_permissions%s%s%s",
		     (flags & HAMMER2_FUSE_RDONLY) ? ",ro" : "",
		     options && *options ? "," : "", options ? options : "");
	return buf;
}

int
hammer2_fuse_mount(hammer2_pfs_t *pfs, const char *mountpoint,
		   const char *fsname, const char *options, int flags,
		   int flush_secs, hammer2_fuse_t **fusep)
{
	char *opts = mount_opts(fsname, options, flags);
	char *argv[] = { "pyh2", "-o", opts, "-o", "debug", NULL };
	struct fuse_args args = FUSE_ARGS_INIT((flags & HAMMER2_FUSE_DEBUG) ?
					       5 : 3, argv);
	hammer2_fuse_t *f;

	*fusep = NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL || opts == NULL) {
		free(f);
		free(opts);
		return hammer2_seterr(ENOMEM, "out of memory");
	}
	f->pfs = pfs;
	f->flags = flags;
	f->flush_secs = flush_secs;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cv, NULL);
	pthread_mutex_init(&f->olock, NULL);
	f->se = fuse_session_new(&args, &h2_ops, sizeof(h2_ops), f);
	fuse_opt_free_args(&args);
	free(opts);
	if (f->se == NULL) {
		free(f);
		return hammer2_seterr(EINVAL, "FUSE session for %s: bad mount "
				      "options (see stderr)", mountpoint);
	}
	if (fuse_session_mount(f->se, mountpoint) != 0) {
		fuse_session_destroy(f->se);
		free(f);
		return hammer2_seterr(EIO, "FUSE mount on %s failed (see "
				      "stderr)", mountpoint);
	}
	if (!(flags & HAMMER2_FUSE_RDONLY)) {
		pfs->keep_unlinked = keep_unlinked;
		pfs->keep_arg = f;
		pfs->space.autocommit = 1;	/* no transaction to keep whole */
	}
	hammer2_fuse_syncer_start(f);
	*fusep = f;
	return 0;
}

int
hammer2_fuse_loop(hammer2_fuse_t *f, int max_threads)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int rc;

	if (cfg == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	if (max_threads <= 0)
		max_threads = 8;
	/* idle workers stay: no thread churn between bursts of requests */
	fuse_loop_cfg_set_max_threads(cfg, max_threads);
	fuse_loop_cfg_set_idle_threads(cfg, max_threads);
	rc = fuse_session_loop_mt(f->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	if (rc != 0)
		return hammer2_seterr(rc < 0 ? -rc : EIO, "FUSE session loop "
				      "failed");
	return 0;
}

int
hammer2_fuse_close(hammer2_fuse_t *f)
{
	int error;

	/* a no-op once the kernel has dropped the mount */
	fuse_session_unmount(f->se);
	/* runs h2_destroy (the final flush) if the kernel said hello */
	fuse_session_destroy(f->se);
	hammer2_fuse_final_commit(f);	/* for a session the kernel never started */
	f->pfs->keep_unlinked = NULL;
	f->pfs->keep_arg = NULL;
	for (int i = 0; i < OPEN_HASH; ++i)
		open_free(&f->opens[i]);
	open_free(&f->ofree);
	hammer2_fuse_dirty_free(f);
	error = f->flush_error;
	pthread_mutex_destroy(&f->olock);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return error ? hammer2_seterr(error, "final flush failed") : 0;
}
