/*
 * pyh2 FUSE server internals shared by its files: the session state,
 * and the commit policy (hammer2_fuse_commit.c) the operations
 * (hammer2_fuse.c) run their modifications under.
 */
#ifndef HAMMER2_FUSE_PRIV_H_
#define HAMMER2_FUSE_PRIV_H_

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include "hammer2_fuse.h"

#define OPEN_HASH	256

/* An inode some client has open: unlinked, it lives until the last close. */
struct open_ent {
	struct open_ent	*next;
	hammer2_tid_t	inum;
	int		opens;
	int		unlinked;	/* its last link is gone */
};

struct hammer2_fuse {
	hammer2_pfs_t		*pfs;
	struct fuse_session	*se;
	int			flags;		/* HAMMER2_FUSE_* */
	int			flush_secs;
	/*
	 * dirty, flush_error and the commit counts change only inside an
	 * exclusive PFS transaction, so every writer sees them consistently.
	 * After a failed commit the device takes no more: modifications are
	 * refused from then on rather than acknowledged and lost.
	 */
	uint64_t		dirty;		/* data (1 KiB per other op) to commit */
	int			flush_error;
	uint64_t		commits;
	uint64_t		reclaimed_at;	/* commits at the last bulkfree */
	pthread_mutex_t		lock;		/* stopping, the syncer's wait */
	pthread_cond_t		cv;
	int			stopping;
	int			syncer_running;
	pthread_t		syncer;
	pthread_mutex_t		olock;		/* the open table */
	struct open_ent		*opens[OPEN_HASH];
};

/* What a modification does to the space in use. */
#define HAMMER2_FUSE_GROWS	0	/* adds data or inodes */
#define HAMMER2_FUSE_CHANGES	1	/* removes, renames, sets attributes */

/*
 * Open and close an exclusive transaction for a modification adding
 * `bytes` of data; wbegin fails (EROFS, ENOSPC, or the earlier commit
 * error) with no transaction held.
 */
int hammer2_fuse_wbegin(hammer2_fuse_t *f, uint64_t bytes, int kind);
void hammer2_fuse_wend(hammer2_fuse_t *f, uint64_t bytes);
/* Commit now (the caller holds the exclusive transaction). */
int hammer2_fuse_commit(hammer2_fuse_t *f);
/* Bytes new data may still take (the caller holds a transaction). */
uint64_t hammer2_fuse_avail(hammer2_fuse_t *f);
/* The background commit every flush_secs, and the last commit. */
void hammer2_fuse_syncer_start(hammer2_fuse_t *f);
void hammer2_fuse_final_commit(hammer2_fuse_t *f);

#endif /* HAMMER2_FUSE_PRIV_H_ */
