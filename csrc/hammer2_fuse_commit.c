/*
 * When a mount commits.  Whether a modification fits, and making room
 * when space runs short, are the core's (hammer2_space.c); here are the
 * mount's triggers: fsync, every flush_secs, enough pending, unmount.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include "hammer2_fuse_priv.h"

#define FLUSH_BYTES	(64ULL << 20)	/* modified blocks kept in memory at most */

/*
 * Commit; a commit refused for room (nothing written, everything kept)
 * gets a bulkfree and one more try.  Only a commit that failed half way
 * refuses further modifications.
 */
int
hammer2_fuse_commit(hammer2_fuse_t *f)
{
	hammer2_space_t *sp = &f->pfs->space;
	int error;

	error = hammer2_space_commit(f->pfs);
	if (error == ENOSPC && !sp->failed) {
		hammer2_space_reclaim(f->pfs);
		error = hammer2_space_commit(f->pfs);
	}
	if (error && !f->flush_error)
		fprintf(stderr, "pyh2 mount: commit failed%s: %s\n",
			sp->failed ? ", refusing further modifications" :
			", modifications kept for the next try",
			hammer2_errmsg());
	f->flush_error = sp->failed;
	hammer2_fuse_dirty_sync(f);
	return error;
}

int
hammer2_fuse_wbegin(hammer2_fuse_t *f, uint64_t bytes, int kind)
{
	int error;

	if (f->flags & HAMMER2_FUSE_RDONLY)
		return EROFS;
	hammer2_pfs_trans_begin(f->pfs, 1);
	error = hammer2_space_reserve(f->pfs, bytes, kind);
	f->flush_error = f->pfs->space.failed;
	hammer2_fuse_dirty_sync(f);	/* it may have committed to make room */
	if (error)
		hammer2_pfs_trans_end(f->pfs);
	return error;
}

void
hammer2_fuse_wend(hammer2_fuse_t *f)
{
	for (int i = 0; i < f->pfs->ndevs; ++i) {
		if (f->pfs->devs[i]->dirty_bytes >= FLUSH_BYTES) {
			hammer2_fuse_commit(f);
			break;
		}
	}
	hammer2_pfs_trans_end(f->pfs);
}

/* Commit every few seconds, as a syncer would. */
static void *
syncer_main(void *arg)
{
	hammer2_fuse_t *f = arg;
	struct timespec ts;

	pthread_mutex_lock(&f->lock);
	while (!f->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += f->flush_secs;
		pthread_cond_timedwait(&f->cv, &f->lock, &ts);
		if (f->stopping)
			break;
		pthread_mutex_unlock(&f->lock);
		hammer2_pfs_trans_begin(f->pfs, 1);
		if (hammer2_pfs_pending(f->pfs))
			hammer2_fuse_commit(f);
		hammer2_pfs_trans_end(f->pfs);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

void
hammer2_fuse_syncer_start(hammer2_fuse_t *f)
{
	if (!(f->flags & HAMMER2_FUSE_RDONLY) && f->flush_secs > 0 &&
	    pthread_create(&f->syncer, NULL, syncer_main, f) == 0)
		f->syncer_running = 1;
}

static void
syncer_stop(hammer2_fuse_t *f)
{
	pthread_mutex_lock(&f->lock);
	/* also read, unlocked, by commits (hammer2_fuse_dirty_sync) */
	__atomic_store_n(&f->stopping, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->lock);
	if (f->syncer_running) {
		pthread_join(f->syncer, NULL);
		f->syncer_running = 0;
	}
}

/*
 * The last commit: its status is the unmount's (flush_error), so
 * modifications it could not write are reported, never dropped silently.
 */
void
hammer2_fuse_final_commit(hammer2_fuse_t *f)
{
	syncer_stop(f);
	if (f->flags & HAMMER2_FUSE_RDONLY)
		return;
	hammer2_pfs_trans_begin(f->pfs, 1);
	if (hammer2_pfs_pending(f->pfs) && hammer2_fuse_commit(f) != 0 &&
	    !f->flush_error)
		f->flush_error = ENOSPC;
	hammer2_pfs_trans_end(f->pfs);
}
