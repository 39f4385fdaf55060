/*
 * pyh2 FUSE server internals shared by its files: the session state, the
 * operations' common helpers, the commit policy (hammer2_fuse_commit.c)
 * the operations (hammer2_fuse.c) run their modifications under, what the
 * kernel caches and what invalidates it (hammer2_fuse_inval.c), and
 * directory listing (hammer2_fuse_readdir.c).
 */
#ifndef HAMMER2_FUSE_PRIV_H_
#define HAMMER2_FUSE_PRIV_H_

#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include "hammer2_fuse.h"

#define OPEN_HASH	256
/*
 * How long the kernel keeps names (and absences) and attributes: every
 * change to them passes through it, but st_blocks, which commits move
 * (hammer2_fuse_inval.c says why and invalidates it).
 */
#define ENTRY_TIMEOUT	3600.0
#define ATTR_TIMEOUT	3600.0

/* An inode some client has open: unlinked, it lives until the last close. */
struct open_ent {
	struct open_ent	*next;
	hammer2_tid_t	inum;
	int		opens;
	int		unlinked;	/* its last link is gone */
};

/* FUSE inodes whose data changed since the last commit (a set). */
typedef struct hammer2_fuse_dirty {
	fuse_ino_t	*slots;
	size_t		cap;		/* a power of 2, or 0 */
	size_t		count;
	hammer2_tid_t	tid;		/* hammer2_space_tid when last synced */
} hammer2_fuse_dirty_t;

struct hammer2_fuse {
	hammer2_pfs_t		*pfs;
	struct fuse_session	*se;
	int			flags;		/* HAMMER2_FUSE_* */
	int			flush_secs;
	/*
	 * A commit failed half way (the PFS's space.failed), or the last
	 * one could not write everything: the unmount's status.  Changes
	 * only inside an exclusive PFS transaction.
	 */
	int			flush_error;
	pthread_mutex_t		lock;		/* stopping, the syncer's wait */
	pthread_cond_t		cv;
	int			stopping;
	int			syncer_running;
	pthread_t		syncer;
	pthread_mutex_t		olock;		/* the open table, its free list */
	struct open_ent		*opens[OPEN_HASH];
	struct open_ent		*ofree;
	hammer2_fuse_dirty_t	dirty;		/* inside exclusive transactions */
};

#define FS(req)		((hammer2_fuse_t *)fuse_req_userdata(req))

/* FUSE_ROOT_ID and the PFS root's inode number trade places. */
static inline hammer2_tid_t
swap_root(hammer2_fuse_t *f, uint64_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return f->pfs->info.inum;
	if (ino == f->pfs->info.inum)
		return FUSE_ROOT_ID;
	return ino;
}

static inline mode_t
type_bits(int type)
{
	switch (type) {
	case HAMMER2_OBJTYPE_DIRECTORY:	return S_IFDIR;
	case HAMMER2_OBJTYPE_REGFILE:	return S_IFREG;
	case HAMMER2_OBJTYPE_FIFO:	return S_IFIFO;
	case HAMMER2_OBJTYPE_CDEV:	return S_IFCHR;
	case HAMMER2_OBJTYPE_BDEV:	return S_IFBLK;
	case HAMMER2_OBJTYPE_SOFTLINK:	return S_IFLNK;
	case HAMMER2_OBJTYPE_SOCKET:	return S_IFSOCK;
	}
	return 0;
}

/* Only errors that are not a caller's mistake are worth a log line. */
static inline void
reply_err(fuse_req_t req, int error)
{
	if (error == EIO || error == ENOMEM || error == ENOTCONN ||
	    error == ELOOP || error == EFBIG)
		fprintf(stderr, "pyh2 mount: %s\n", hammer2_errmsg());
	fuse_reply_err(req, error);
}

static inline void
rbegin(hammer2_fuse_t *f)
{
	hammer2_pfs_trans_begin(f->pfs, 0);
}

static inline void
rend(hammer2_fuse_t *f)
{
	hammer2_pfs_trans_end(f->pfs);
}

/* The calling worker's buffer of size bytes at least, or NULL (ENOMEM). */
void *hammer2_fuse_scratch(size_t size);
/* A lookup reply for FUSE inode ino (inside a transaction). */
int hammer2_fuse_entry_fill(hammer2_fuse_t *f, fuse_ino_t ino,
			    struct fuse_entry_param *e);
void hammer2_fuse_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi);
void hammer2_fuse_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			      off_t off, struct fuse_file_info *fi);

/*
 * Open and close an exclusive transaction for a modification adding
 * `bytes` of data (kind HAMMER2_SPACE_*); wbegin fails (EROFS, ENOSPC,
 * or the error of a commit that failed) with no transaction held.
 */
int hammer2_fuse_wbegin(hammer2_fuse_t *f, uint64_t bytes, int kind);
void hammer2_fuse_wend(hammer2_fuse_t *f);
/*
 * ino's data changes (inside the exclusive transaction, before the
 * change): its st_blocks moves at the next commit.  ENOMEM refuses it.
 */
int hammer2_fuse_dirty(hammer2_fuse_t *f, fuse_ino_t ino);
/*
 * Inside an exclusive transaction that may have committed: if one did,
 * the kernel forgets the attributes of the set, which starts over.
 */
void hammer2_fuse_dirty_sync(hammer2_fuse_t *f);
void hammer2_fuse_dirty_free(hammer2_fuse_t *f);
/* Commit now (the caller holds the exclusive transaction). */
int hammer2_fuse_commit(hammer2_fuse_t *f);
/* The background commit every flush_secs, and the last commit. */
void hammer2_fuse_syncer_start(hammer2_fuse_t *f);
void hammer2_fuse_final_commit(hammer2_fuse_t *f);

#endif /* HAMMER2_FUSE_PRIV_H_ */
