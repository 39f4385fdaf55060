/*
 * When a mount commits, and whether a modification fits.
 *
 * Space is only allocated when a commit writes the blocks out, and a
 * commit that runs out of it fails for good: so a modification the next
 * commit could not hold is refused up front, and nothing acknowledged is
 * lost.  Copy-on-write leaves every overwritten block behind and a
 * removal frees nothing by itself: when space runs short, a bulkfree
 * takes back what the committed tree no longer references.  Each runs
 * inside the exclusive transaction: every request waits for its scan.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include "hammer2_cluster.h"
#include "hammer2_fuse_priv.h"

#define FLUSH_BYTES	(64ULL << 20)	/* modified data kept in memory at most */
/*
 * Free space the allocator counts but a commit may not use: blocks of up
 * to 64 KiB need runs of free 16 KiB blocks in one 4 MiB segment, and
 * what is left is scattered.  Modifications that add no data need room
 * for a little metadata only, and leave the rest to the ones that make
 * room: a full volume still takes an rm.
 */
#define GROW_SLACK	(32ULL << 20)
#define CHANGE_SLACK	(4ULL << 20)
#define RECLAIM_GAP_NS	1000000000LL	/* bulkfrees ahead of need: 1 a second */

int
hammer2_fuse_commit(hammer2_fuse_t *f)
{
	int error;

	if (f->flush_error)
		return f->flush_error;
	error = hammer2_pfs_flush(f->pfs);
	if (error) {
		fprintf(stderr, "pyh2 mount: flush failed, refusing further "
			"modifications: %s\n", hammer2_errmsg());
		f->flush_error = error;
		return error;
	}
	f->dirty = 0;
	++f->commits;
	return 0;
}

/*
 * Free bytes the allocator had at the last commit: the fullest live
 * node's (one out of the cluster takes no commits, so its count stands).
 */
static uint64_t
space_free(hammer2_fuse_t *f)
{
	uint64_t avail = UINT64_MAX;

	for (int i = 0; i < f->pfs->ndevs; ++i) {
		hammer2_dev_t *hmp = f->pfs->devs[i];

		if (hammer2_node_live(hmp) &&
		    hmp->voldata->allocator_free < avail)
			avail = hmp->voldata->allocator_free;
	}
	return avail;
}

/* Space `bytes` of new data (and what is dirty) may take at the next commit. */
static uint64_t
space_need(hammer2_fuse_t *f, uint64_t bytes, int kind)
{
	uint64_t need = f->dirty + bytes;

	return need + need / 16 +
	       (kind == HAMMER2_FUSE_GROWS ? GROW_SLACK : CHANGE_SLACK);
}

uint64_t
hammer2_fuse_avail(hammer2_fuse_t *f)
{
	uint64_t avail = space_free(f);
	uint64_t pending = space_need(f, 0, HAMMER2_FUSE_GROWS);

	return avail > pending ? avail - pending : 0;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * bulkfree, after committing what is pending by the usual rules; only
 * once per commit (without one it would find nothing new).  One that
 * fails before it changes anything (a block of the tree it cannot read)
 * just frees nothing; one whose own commit fails is a failed commit.
 */
static void
reclaim(hammer2_fuse_t *f)
{
	uint64_t freed;
	int error;

	if (f->dirty && hammer2_fuse_commit(f) != 0)
		return;
	if (f->flush_error || f->commits == f->reclaimed_at)
		return;
	error = hammer2_cluster_bulkfree(f->pfs->devs, f->pfs->ndevs, &freed);
	f->reclaimed_at = f->commits;
	f->reclaimed_ns = now_ns();
	if (error == 0)
		return;
	fprintf(stderr, "pyh2 mount: bulkfree failed: %s\n", hammer2_errmsg());
	for (int i = 0; i < f->pfs->ndevs; ++i) {
		if (f->pfs->devs[i]->flush_error) {
			fprintf(stderr, "pyh2 mount: refusing further "
				"modifications\n");
			f->flush_error = error;
			break;
		}
	}
}

int
hammer2_fuse_wbegin(hammer2_fuse_t *f, uint64_t bytes, int kind)
{
	if (f->flags & HAMMER2_FUSE_RDONLY)
		return EROFS;
	hammer2_pfs_trans_begin(f->pfs, 1);
	/* committing what is pending makes the allocator's count exact */
	if (space_need(f, bytes, kind) > space_free(f) && f->dirty)
		hammer2_fuse_commit(f);
	/* space comes back before writers run short, at once if this is short */
	if (space_need(f, bytes, kind) > space_free(f) ||
	    (space_need(f, bytes, HAMMER2_FUSE_GROWS) > space_free(f) &&
	     now_ns() - f->reclaimed_ns >= RECLAIM_GAP_NS))
		reclaim(f);
	if (f->flush_error) {
		hammer2_pfs_trans_end(f->pfs);
		return hammer2_seterr(f->flush_error, "a commit failed: no more "
				      "modifications");
	}
	if (space_need(f, bytes, kind) > space_free(f)) {
		hammer2_pfs_trans_end(f->pfs);
		return ENOSPC;
	}
	return 0;
}

/*
 * End a modification of `bytes` of data (a failed one may have changed
 * things too); anything else counts as an inode's worth.
 */
void
hammer2_fuse_wend(hammer2_fuse_t *f, uint64_t bytes)
{
	f->dirty += bytes ? bytes : HAMMER2_INODE_BYTES;
	if (f->dirty >= FLUSH_BYTES)
		hammer2_fuse_commit(f);
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
		if (f->dirty)
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
	f->stopping = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->lock);
	if (f->syncer_running) {
		pthread_join(f->syncer, NULL);
		f->syncer_running = 0;
	}
}

void
hammer2_fuse_final_commit(hammer2_fuse_t *f)
{
	syncer_stop(f);
	if (f->flags & HAMMER2_FUSE_RDONLY)
		return;
	hammer2_pfs_trans_begin(f->pfs, 1);
	hammer2_fuse_commit(f);
	hammer2_pfs_trans_end(f->pfs);
}
