/*
 * The node list of an open cluster, its lock, the PFSes open over it and
 * one sync thread per node.  Every cluster-wide operation (join, flush,
 * bulkfree, resync, reopen) runs under the list lock and every node's
 * transaction lock, so a node replaced by a fresh open of its media is
 * never used half swapped.  A sync thread waits for its node to leave the
 * cluster and brings it back on its own: a failed node is reopened from
 * its media (its in-memory state is not trusted), a stale one resynced
 * from the live nodes, while the cluster serves between its steps: a
 * resync holds the locks while nobody waits for them, and stops (once it
 * has held them a little while) to let waiting transactions in; it goes
 * on once the cluster has rested a millisecond, or after 10 ms at most,
 * so a busy cluster keeps most of its time and the resync still ends.
 * Replaced devices are kept until the set is destroyed: a caller may
 * still be waiting on one's transaction lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hammer2_cluster.h"

#define SYNC_POLL_MS	100	/* how often an idle sync thread looks */
#define SYNC_RETRY_MS	250	/* after a failed attempt, doubling */
#define SLICE_MIN_NS	1000000L	/* a resync's hold before it yields */
#define GAP_POLL_NS	250000L		/* ... then how often it looks */
#define GAP_QUIET	4		/* ... for this many quiet looks */
#define GAP_MAX		40		/* ... or this many looks in all */

struct sync_arg {
	hammer2_nodeset_t	*ns;
	int			index;
};

static void
deadline_ms(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

/*
 * The list lock alone, for callers (the Python layer) that hand the node
 * list to several core calls in a row; it nests.
 */
void
hammer2_nodeset_hold(hammer2_nodeset_t *ns)
{
	if (pthread_mutex_trylock(&ns->lock) == 0)
		return;
	__atomic_add_fetch(&ns->waiting, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&ns->lock);
	__atomic_sub_fetch(&ns->waiting, 1, __ATOMIC_RELAXED);
}

void
hammer2_nodeset_release(hammer2_nodeset_t *ns)
{
	pthread_mutex_unlock(&ns->lock);
}

/* The list lock, then every node's transaction lock in node order. */
void
hammer2_nodeset_begin(hammer2_nodeset_t *ns, int write)
{
	hammer2_nodeset_hold(ns);
	for (int i = 0; i < ns->ndevs; ++i)
		hammer2_trans_begin(ns->devs[i], write);
}

void
hammer2_nodeset_end(hammer2_nodeset_t *ns)
{
	for (int i = ns->ndevs - 1; i >= 0; --i)
		hammer2_trans_end(ns->devs[i]);
	pthread_mutex_unlock(&ns->lock);
}

/* Open PFS label over the nodes; it follows them through node swaps. */
int
hammer2_nodeset_pfs_open(hammer2_nodeset_t *ns, const char *label,
			 hammer2_pfs_t **pfsp)
{
	hammer2_pfs_t **v;
	int error;

	hammer2_nodeset_begin(ns, 0);
	error = hammer2_pfs_open(ns->devs, ns->ndevs, label, pfsp);
	if (error == 0) {
		v = realloc(ns->pfs, (size_t)(ns->npfs + 1) * sizeof(*v));
		if (v == NULL) {
			hammer2_pfs_close(*pfsp);
			error = hammer2_seterr(ENOMEM, "out of memory");
		} else {
			v[ns->npfs++] = *pfsp;
			ns->pfs = v;
		}
	}
	hammer2_nodeset_end(ns);
	return error;
}

void
hammer2_nodeset_pfs_close(hammer2_nodeset_t *ns, hammer2_pfs_t *pfs)
{
	hammer2_nodeset_hold(ns);
	for (int i = 0; i < ns->npfs; ++i) {
		if (ns->pfs[i] == pfs) {
			ns->pfs[i] = ns->pfs[--ns->npfs];
			break;
		}
	}
	hammer2_nodeset_release(ns);
	hammer2_pfs_close(pfs);
}

/*
 * Node index's resyncs run one at a time: its sync thread and a caller
 * (or two callers) take turns, since one's abort would throw away the
 * other's copy, and the set is closed only once neither runs.
 */
static int
sync_claim(hammer2_nodeset_t *ns, int index)
{
	hammer2_sync_status_t *st = &ns->sync[index];
	int error = 0;

	pthread_mutex_lock(&ns->statlock);
	while (st->running && !ns->stopping)
		pthread_cond_wait(&ns->cv, &ns->statlock);
	if (ns->stopping)
		error = hammer2_seterr(ECANCELED, "resync of node %d given up: "
				       "the cluster is closing", index);
	else
		st->running = 1;
	pthread_mutex_unlock(&ns->statlock);
	return error;
}

static void
sync_done(hammer2_nodeset_t *ns, int index, int error)
{
	hammer2_sync_status_t *st = &ns->sync[index];

	pthread_mutex_lock(&ns->statlock);
	st->running = 0;
	pthread_cond_broadcast(&ns->cv);	/* the next, or one closing */
	st->error = error;
	snprintf(st->last_error, sizeof(st->last_error), "%s",
		 error ? hammer2_errmsg() : "");
	pthread_mutex_unlock(&ns->statlock);
}

void
hammer2_nodeset_sync_status(hammer2_nodeset_t *ns, int index,
			    hammer2_sync_status_t *st)
{
	pthread_mutex_lock(&ns->statlock);
	*st = ns->sync[index];
	st->done_elems = __atomic_load_n(&ns->sync[index].done_elems,
					 __ATOMIC_RELAXED);
	st->done_bytes = __atomic_load_n(&ns->sync[index].done_bytes,
					 __ATOMIC_RELAXED);
	pthread_mutex_unlock(&ns->statlock);
}

/*
 * Replace node index by a fresh open of its media, in every open PFS
 * (list and transaction locks held); it comes back stale, or failed if
 * an open PFS could not take it.
 */
static int
nodeset_reopen_locked(hammer2_nodeset_t *ns, int index)
{
	hammer2_dev_t *old = ns->devs[index], *hmp, **grave;
	const char *paths[HAMMER2_MAX_VOLUMES];
	int error;

	for (int v = 0; v < old->nvols; ++v)
		paths[v] = old->vols[v].path;
	error = hammer2_dev_open(paths, old->nvols,
				 old->readonly ? 0 : HAMMER2_OPEN_RDWR, &hmp);
	if (error)
		return error;
	grave = realloc(ns->grave, (size_t)(ns->ngrave + 1) * sizeof(*grave));
	if (grave == NULL) {
		hammer2_dev_close(hmp);
		return hammer2_seterr(ENOMEM, "out of memory");
	}
	ns->grave = grave;
	hammer2_heal_forget(ns->devs, ns->ndevs);	/* hold the old node's chains */
	hammer2_trans_begin(hmp, 1);
	for (int i = 0; i < ns->npfs && error == 0; ++i)
		error = hammer2_pfs_node_swap(ns->pfs[i], index, hmp);
	/*
	 * The PFSes swapped so far point at hmp: it stays in the set either
	 * way, failed if a swap failed (the sync thread reopens it again).
	 */
	if (error)
		hammer2_node_fail(hmp, error, hammer2_errmsg());
	else
		hammer2_node_stale(hmp, "reopened after a failure");
	ns->devs[index] = hmp;
	ns->grave[ns->ngrave++] = old;
	hammer2_trans_end(old);		/* held by the caller, in its place */
	if (error == 0)
		error = hammer2_cluster_join(ns->devs, ns->ndevs);
	return error;
}

int
hammer2_nodeset_reopen(hammer2_nodeset_t *ns, int index)
{
	int error;

	if (index < 0 || index >= ns->ndevs)
		return hammer2_seterr(EINVAL, "no node %d in a cluster of %d",
				      index, ns->ndevs);
	hammer2_nodeset_begin(ns, 1);
	error = nodeset_reopen_locked(ns, index);
	hammer2_nodeset_end(ns);
	return error;
}

/* Threads waiting for the node list or a node's transaction lock. */
static int
nodeset_waiters(hammer2_nodeset_t *ns)
{
	int n = __atomic_load_n(&ns->waiting, __ATOMIC_RELAXED);

	for (int i = 0; i < ns->ndevs; ++i)
		n += __atomic_load_n(&ns->devs[i]->trans_waiting,
				     __ATOMIC_RELAXED);
	return n;
}

/* Transactions begun on the nodes so far. */
static uint64_t
nodeset_activity(hammer2_nodeset_t *ns)
{
	uint64_t n = 0;

	for (int i = 0; i < ns->ndevs; ++i)
		n += __atomic_load_n(&ns->devs[i]->trans_begun, __ATOMIC_RELAXED);
	return n;
}

/* A resync's hold of the locks (hammer2_cluster_resync_step's stop). */
struct sync_slice {
	hammer2_nodeset_t	*ns;
	int			index;
	hammer2_resync_stats_t	*stats;
	struct timespec		begun;
};

static int
slice_stop(void *arg)
{
	struct sync_slice *sl = arg;
	int64_t at = __atomic_load_n(&sl->ns->pause_at[sl->index],
				     __ATOMIC_ACQUIRE);
	struct timespec now;

	if (at >= 0 && sl->stats->copied >= (uint64_t)at)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((now.tv_sec - sl->begun.tv_sec) * 1000000000L +
	    (now.tv_nsec - sl->begun.tv_nsec) < SLICE_MIN_NS)
		return 0;
	return nodeset_waiters(sl->ns) > 0;
}

/*
 * Between two holds of a resync: held while paused (the node's pause_at
 * reached), then until the cluster rests (no transaction begun or
 * waiting for GAP_QUIET looks) or GAP_MAX looks passed.  Returns whether
 * the set is stopping.
 */
static int
slice_gap(hammer2_nodeset_t *ns, int index, const hammer2_resync_walk_t *w,
	  const hammer2_resync_stats_t *stats)
{
	struct timespec ts = { 0, GAP_POLL_NS };
	int stopping;

	pthread_mutex_lock(&ns->statlock);
	ns->sync[index].passes = w->passes;
	while (!ns->stopping && ns->pause_at[index] >= 0 &&
	       stats->copied >= (uint64_t)ns->pause_at[index]) {
		ns->sync[index].paused = 1;
		pthread_cond_broadcast(&ns->cv);
		pthread_cond_wait(&ns->cv, &ns->statlock);
	}
	ns->sync[index].paused = 0;
	stopping = ns->stopping;
	pthread_mutex_unlock(&ns->statlock);
	for (int n = 0, quiet = 0; !stopping && n < GAP_MAX &&
	     quiet < GAP_QUIET; ++n) {
		uint64_t begun = nodeset_activity(ns);

		nanosleep(&ts, NULL);
		quiet = nodeset_activity(ns) == begun &&
			nodeset_waiters(ns) == 0 ? quiet + 1 : 0;
	}
	return stopping;
}

/*
 * Bring node index back: reopened if failed, then resynced from the live
 * nodes in steps, each under the list lock and every node's transaction
 * lock; the open PFSes see it again.  For its sync thread (counted) the
 * count moves before the node is seen live.
 */
static int
nodeset_sync(hammer2_nodeset_t *ns, int index, int flags,
	     hammer2_resync_stats_t *stats, int counted)
{
	struct sync_slice sl = { ns, index, stats, { 0, 0 } };
	hammer2_resync_walk_t w;
	hammer2_dev_t *dst = NULL;
	hammer2_node_t node;
	int error;

	memset(&w, 0, sizeof(w));
	w.stop = slice_stop;
	w.arg = &sl;
	stats->progress = &ns->sync[index];
	for (;;) {
		hammer2_nodeset_begin(ns, 1);
		if (dst && ns->devs[index] != dst) {
			/* reopened meanwhile: the copy went with the old one */
			error = hammer2_seterr(EAGAIN, "%s: reopened during its "
					       "resync", dst->path);
		} else {
			hammer2_node_get(ns->devs[index], &node);
			error = dst == NULL && node.state == HAMMER2_NODE_FAILED ?
				nodeset_reopen_locked(ns, index) : 0;
			dst = ns->devs[index];
			clock_gettime(CLOCK_MONOTONIC, &sl.begun);
			if (error == 0)
				error = hammer2_cluster_resync_step(ns->devs,
						ns->ndevs, index, -1, flags, stats, &w);
			if (error == 0 && counted) {
				pthread_mutex_lock(&ns->statlock);
				++ns->sync[index].syncs;
				pthread_mutex_unlock(&ns->statlock);
			}
			if (error == 0)
				for (int i = 0; i < ns->npfs; ++i)
					hammer2_pfs_revalidate(ns->pfs[i]);
		}
		hammer2_nodeset_end(ns);
		if (error != EINPROGRESS)
			break;
		if (slice_gap(ns, index, &w, stats)) {
			hammer2_nodeset_begin(ns, 1);
			if (ns->devs[index] == dst)
				hammer2_cluster_resync_abort(dst);
			hammer2_nodeset_end(ns);
			error = hammer2_seterr(ECANCELED, "%s: resync given up: "
					       "the cluster is closing", dst->path);
			break;
		}
	}
	pthread_mutex_lock(&ns->statlock);
	ns->sync[index].passes = w.passes;
	pthread_mutex_unlock(&ns->statlock);
	stats->progress = NULL;
	return error;
}

/*
 * Resync node index now (flags: HAMMER2_RESYNC_*); a failure leaves it
 * half copied, so it is reopened from its media and tried once more.
 */
static int
nodeset_resync(hammer2_nodeset_t *ns, int index, int flags,
	       hammer2_resync_stats_t *stats, int counted)
{
	int error;

	if (index < 0 || index >= ns->ndevs)
		return hammer2_seterr(EINVAL, "no node %d in a cluster of %d",
				      index, ns->ndevs);
	if ((error = sync_claim(ns, index)) != 0)
		return error;
	error = nodeset_sync(ns, index, flags, stats, counted);
	if (error && error != EROFS && error != ECANCELED) {
		memset(stats, 0, sizeof(*stats));
		error = nodeset_sync(ns, index, flags, stats, counted);
	}
	sync_done(ns, index, error);
	return error;
}

int
hammer2_nodeset_resync(hammer2_nodeset_t *ns, int index, int flags,
		       hammer2_resync_stats_t *stats)
{
	return nodeset_resync(ns, index, flags, stats, 0);
}

/*
 * For tests: node index's resyncs stop once they copied elems elements
 * (-1: never) and wait, the locks let go, until called again.
 */
void
hammer2_nodeset_sync_pause(hammer2_nodeset_t *ns, int index, int64_t elems)
{
	if (index < 0 || index >= ns->ndevs)
		return;
	pthread_mutex_lock(&ns->statlock);
	__atomic_store_n(&ns->pause_at[index], elems, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&ns->cv);
	pthread_mutex_unlock(&ns->statlock);
}

/* Wait up to timeout_ms for node index's resync to pause; whether it is. */
int
hammer2_nodeset_sync_paused(hammer2_nodeset_t *ns, int index, int timeout_ms)
{
	struct timespec ts;
	int paused;

	if (index < 0 || index >= ns->ndevs)
		return 0;
	deadline_ms(&ts, timeout_ms);
	pthread_mutex_lock(&ns->statlock);
	while (!ns->sync[index].paused &&
	       pthread_cond_timedwait(&ns->cv, &ns->statlock, &ts) == 0)
		;
	paused = ns->sync[index].paused;
	pthread_mutex_unlock(&ns->statlock);
	return paused;
}

/* A node the sync thread should bring back, with a quorum to do it. */
static int
needs_sync(hammer2_nodeset_t *ns, int index)
{
	int live = 0;

	if (hammer2_node_live(ns->devs[index]))
		return 0;
	for (int i = 0; i < ns->ndevs; ++i)
		live += hammer2_node_live(ns->devs[i]);
	return live >= hammer2_quorum(ns->ndevs);
}

static void *
sync_main(void *arg)
{
	struct sync_arg *sa = arg;
	hammer2_nodeset_t *ns = sa->ns;
	int index = sa->index, wait_ms = SYNC_POLL_MS, retry_ms = SYNC_RETRY_MS;

	free(sa);
	pthread_mutex_lock(&ns->statlock);
	while (!ns->stopping) {
		struct timespec ts;
		hammer2_resync_stats_t *stats;
		int error;

		deadline_ms(&ts, wait_ms);
		pthread_cond_timedwait(&ns->cv, &ns->statlock, &ts);
		wait_ms = SYNC_POLL_MS;
		if (ns->stopping || !needs_sync(ns, index))
			continue;
		pthread_mutex_unlock(&ns->statlock);
		stats = calloc(1, sizeof(*stats));
		error = stats ? nodeset_resync(ns, index, 0, stats, 1) : ENOMEM;
		free(stats);
		pthread_mutex_lock(&ns->statlock);
		/* a node that cannot come back (server gone): backing off */
		if (error) {
			wait_ms = retry_ms;
			retry_ms = retry_ms * 2 < ns->retry_max_ms ?
				   retry_ms * 2 : ns->retry_max_ms;
		} else {
			retry_ms = SYNC_RETRY_MS;
		}
	}
	pthread_mutex_unlock(&ns->statlock);
	return NULL;
}

/*
 * The node list of devs (an open cluster, joined here); with autosync a
 * sync thread per node, which retries a node that cannot come back
 * after 250 ms, doubling up to retry_max_ms.  The set owns the devices
 * from now on.
 */
int
hammer2_nodeset_create(hammer2_dev_t **devs, int ndevs, int autosync,
		       int retry_max_ms, hammer2_nodeset_t **nsp)
{
	pthread_mutexattr_t attr;
	hammer2_nodeset_t *ns;
	int error;

	if (ndevs < 1 || ndevs > HAMMER2_MAXCLUSTER)
		return hammer2_seterr(EINVAL, "a cluster has 1 to %d nodes, not %d",
				      HAMMER2_MAXCLUSTER, ndevs);
	ns = calloc(1, sizeof(*ns));
	if (ns == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	pthread_mutexattr_init(&attr);		/* held around calls that take it */
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&ns->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&ns->statlock, NULL);
	pthread_cond_init(&ns->cv, NULL);
	memcpy(ns->devs, devs, (size_t)ndevs * sizeof(*devs));
	ns->ndevs = ndevs;
	for (int i = 0; i < HAMMER2_MAXCLUSTER; ++i)
		ns->pause_at[i] = -1;
	ns->retry_max_ms = retry_max_ms > SYNC_RETRY_MS ? retry_max_ms :
			   SYNC_RETRY_MS;
	hammer2_nodeset_begin(ns, 1);
	error = hammer2_cluster_join(ns->devs, ns->ndevs);
	hammer2_nodeset_end(ns);
	for (int i = 0; error == 0 && autosync && ndevs > 1 && i < ndevs; ++i) {
		struct sync_arg *sa = malloc(sizeof(*sa));

		if (sa == NULL) {
			error = hammer2_seterr(ENOMEM, "out of memory");
			break;
		}
		*sa = (struct sync_arg){ ns, i };
		if (pthread_create(&ns->threads[i], NULL, sync_main, sa) != 0) {
			free(sa);
			error = hammer2_seterr(EAGAIN, "cannot start a sync thread");
			break;
		}
		ns->nthreads = i + 1;
	}
	if (error) {
		memset(ns->devs, 0, sizeof(ns->devs));	/* the caller keeps them */
		hammer2_nodeset_destroy(ns);
		return error;
	}
	*nsp = ns;
	return 0;
}

/*
 * Stop the sync threads and wait for resyncs called from elsewhere (they
 * give up at their next step); forget the heals; close every device.
 */
void
hammer2_nodeset_destroy(hammer2_nodeset_t *ns)
{
	pthread_mutex_lock(&ns->statlock);
	ns->stopping = 1;
	pthread_cond_broadcast(&ns->cv);
	for (int i = 0; i < ns->ndevs; ++i)
		while (ns->sync[i].running)
			pthread_cond_wait(&ns->cv, &ns->statlock);
	pthread_mutex_unlock(&ns->statlock);
	for (int i = 0; i < ns->nthreads; ++i)
		pthread_join(ns->threads[i], NULL);
	hammer2_heal_forget(ns->devs, ns->devs[0] ? ns->ndevs : 0);
	for (int i = 0; i < ns->ndevs; ++i)
		if (ns->devs[i])
			hammer2_dev_close(ns->devs[i]);
	for (int i = 0; i < ns->ngrave; ++i)
		hammer2_dev_close(ns->grave[i]);
	free(ns->grave);
	free(ns->pfs);
	pthread_cond_destroy(&ns->cv);
	pthread_mutex_destroy(&ns->statlock);
	pthread_mutex_destroy(&ns->lock);
	free(ns);
}
