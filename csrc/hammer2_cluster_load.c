/*
 * Loading an element's data from the cluster: the read goes to one node
 * through the DIO layer's asynchronous path and completes in its
 * callback with the first valid copy.  A node that fails is skipped for
 * the next; one that is slow is not waited for: past a delay taken from
 * its recent reads, the next node is asked too and whichever copy checks
 * first is delivered (the other completes on its own, unseen).  Reads
 * start at the first node holding the element that is not markedly slower
 * than the others, by each node's usual read time (hammer2_devio.c times
 * every read).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hammer2_cluster_priv.h"

#define HEDGE_MIN_NS	20000000LL	/* never ask a second node sooner */
#define HEDGE_FACTOR	4		/* ... than this many times the usual */
/*
 * No node is passed over below this: a busy host's stall (one read's in
 * the moving average at 1/8) must not move reads, which go through one
 * node, off a node that is not slow (torture replays rely on where reads
 * go: what a fault there is noticed by).
 */
#define SLOW_MIN_NS	30000000ULL
#define SLOW_FACTOR	4		/* ... nor unless this much slower */

/* One element's load, shared by the caller and the reads in flight. */
struct load {
	pthread_mutex_t		lock;
	pthread_cond_t		cv;
	int			refs;		/* the caller and each read */
	int			inflight;
	int			taken;		/* a copy is being delivered */
	int			done;		/* ... was, and its buffer let go */
	hammer2_cluster_cb_t	callback;
	void			*arg;
	uint32_t		failed;		/* nodes whose read failed */
	int			errors[HAMMER2_MAXCLUSTER];
	char			why[200];	/* the last failure */
};

/* One node's read. */
struct load_read {
	hammer2_iocb_t		iocb;
	struct load		*ld;
	hammer2_blockref_t	bref;		/* a copy: the chain may go first */
	hammer2_dev_t		*hmp;
	int			index;
};

static void
load_put(struct load *ld)
{
	int last;

	pthread_mutex_lock(&ld->lock);
	last = --ld->refs == 0;
	pthread_mutex_unlock(&ld->lock);
	if (last) {
		pthread_cond_destroy(&ld->cv);
		pthread_mutex_destroy(&ld->lock);
		free(ld);
	}
}

static void
load_read_done(hammer2_iocb_t *iocb)
{
	struct load_read *rd = iocb->arg;
	struct load *ld = rd->ld;
	const void *data = NULL;
	int error = iocb->error, delivered = 0;
	char what[200];

	if (error == 0) {
		data = hammer2_io_data(iocb->dio, iocb->off);
		error = hammer2_io_verify(iocb->dio, iocb->off, iocb->bytes,
					  &rd->bref);
	}
	if (error)
		snprintf(what, sizeof(what), "%s: %s block at 0x%llx: %s",
			 rd->hmp->path, hammer2_bref_type_name(rd->bref.type),
			 (unsigned long long)(rd->bref.data_off & HAMMER2_OFF_MASK),
			 hammer2_errmsg());
	pthread_mutex_lock(&ld->lock);
	if (error == 0 && !ld->taken) {
		ld->callback(ld->arg, data, iocb->bytes, 0);
		ld->taken = delivered = 1;
	} else if (error) {
		ld->failed |= 1u << rd->index;
		ld->errors[rd->index] = error;
		snprintf(ld->why, sizeof(ld->why), "%s", what);
	}
	pthread_mutex_unlock(&ld->lock);
	/* the buffer goes before the caller does (a failed one is not cached) */
	hammer2_io_putblk(&iocb->dio);
	/*
	 * A read that lost the race and then failed is only counted: the
	 * caller, and the other nodes' chains, may be gone (a scrub, or the
	 * next read of the element, finds it again).
	 */
	if (error)
		hammer2_node_read_error(rd->hmp, error, what);
	pthread_mutex_lock(&ld->lock);
	ld->done |= delivered;
	--ld->inflight;
	pthread_cond_broadcast(&ld->cv);
	pthread_mutex_unlock(&ld->lock);
	load_put(ld);
	free(rd);
}

/* May this item serve the element (live ones, else any valid one)? */
static int
may_serve(const hammer2_cluster_item_t *item, int any_live)
{
	return any_live ? item_live(item) : item_valid(item);
}

/*
 * The first item that may serve (live ones, else any valid one) and is
 * not markedly slower than the quickest of them (SLOW_FACTOR times, and
 * past SLOW_MIN_NS); -1: none may.
 */
int
cluster_quickest(hammer2_cluster_t *cluster, int any_live)
{
	uint64_t lat[HAMMER2_MAXCLUSTER], best = UINT64_MAX, limit;
	int first = -1;

	for (int i = 0; i < cluster->nchains; ++i) {
		if (!may_serve(&cluster->array[i], any_live))
			continue;
		/*
		 * 0: no read timed yet.  Presumed quick, so a node known to
		 * be slow is passed over for it (and the read times it).
		 */
		lat[i] = __atomic_load_n(&cluster->array[i].chain->hmp->node.lat_ns,
					 __ATOMIC_RELAXED);
		if (lat[i] < best)
			best = lat[i];
		if (first < 0)
			first = i;
	}
	if (first < 0)
		return first;
	limit = best * SLOW_FACTOR > SLOW_MIN_NS ? best * SLOW_FACTOR : SLOW_MIN_NS;
	for (int i = 0; i < cluster->nchains; ++i)
		if (may_serve(&cluster->array[i], any_live) && lat[i] <= limit)
			return i;
	return first;
}

/*
 * Where a load of the element starts: a node whose data is resolved, else
 * the quickest that may serve.  Live nodes serve; the others (stale: an
 * older version) only when none is live.  -1: no node may.
 */
static int
load_start(hammer2_cluster_t *cluster, int *any_livep)
{
	int any_live = 0;

	for (int i = 0; i < cluster->nchains; ++i)
		any_live |= item_live(&cluster->array[i]);
	*any_livep = any_live;
	for (int i = 0; i < cluster->nchains; ++i)
		if (may_serve(&cluster->array[i], any_live) &&
		    (cluster->array[i].chain->flags & HAMMER2_CHAIN_LOADED))
			return i;
	return cluster_quickest(cluster, any_live);
}

/* The chain a load of the element reads first (NULL: none may serve). */
hammer2_chain_t *
hammer2_cluster_load_chain(hammer2_cluster_t *cluster)
{
	int any_live, start = load_start(cluster, &any_live);

	return start < 0 ? NULL : cluster->array[start].chain;
}

/* Start node i's read (without the load's lock: a cached one completes here). */
static int
read_issue(struct load *ld, hammer2_chain_t *chain, int index)
{
	int radix = (int)(chain->bref.data_off & HAMMER2_OFF_MASK_RADIX);
	struct load_read *rd;

	if (radix < HAMMER2_RADIX_MIN || radix > HAMMER2_RADIX_MAX)
		return hammer2_seterr(EINVAL, "invalid size radix %d", radix);
	rd = calloc(1, sizeof(*rd));
	if (rd == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	rd->ld = ld;
	rd->bref = chain->bref;
	rd->hmp = chain->hmp;
	rd->index = index;
	rd->iocb.callback = load_read_done;
	rd->iocb.off = chain->bref.data_off & HAMMER2_OFF_MASK;
	rd->iocb.bytes = 1 << radix;
	rd->iocb.arg = rd;
	rd->iocb.flags = HAMMER2_IOCB_ASYNC;
	pthread_mutex_lock(&ld->lock);
	++ld->refs;
	++ld->inflight;
	pthread_mutex_unlock(&ld->lock);
	hammer2_io_load_async(chain->hmp, &rd->iocb);
	return 0;
}

static int64_t
hedge_ns(const hammer2_chain_t *chain)
{
	int64_t lat = (int64_t)__atomic_load_n(&chain->hmp->node.lat_ns,
					       __ATOMIC_RELAXED) * HEDGE_FACTOR;

	return lat > HEDGE_MIN_NS ? lat : HEDGE_MIN_NS;
}

/*
 * Deliver the first validated copy of the element's data to callback
 * (which may run on an I/O worker; the data pointer is only valid during
 * the call).  A node that fails is skipped and the next one tried, one
 * that is slow raced by the next; if all fail the callback gets the
 * error.  Failed nodes are counted in their status and, where another
 * served, noted for a rewrite (hammer2_heal.c).
 */
int
hammer2_cluster_load_async(hammer2_cluster_t *cluster,
			   hammer2_cluster_cb_t callback, void *arg)
{
	int any_live, start = load_start(cluster, &any_live);
	hammer2_chain_t *at[HAMMER2_MAXCLUSTER], *chain;
	pthread_condattr_t cattr;
	struct load *ld;
	int next = 0, error = ENOENT, done;
	uint32_t damaged = 0;

	if (start < 0) {
		callback(arg, NULL, 0, error);
		return error;
	}
	chain = cluster->array[start].chain;
	/* resolved (or modified, not yet on media) data first */
	if ((chain->flags & HAMMER2_CHAIN_LOADED) && chain->data) {
		callback(arg, chain->data, (int)chain->bytes, 0);
		return 0;
	}
	if ((chain->bref.data_off & HAMMER2_OFF_MASK_RADIX) == 0) {
		callback(arg, NULL, 0, 0);
		return 0;
	}
	ld = calloc(1, sizeof(*ld));
	if (ld == NULL) {
		error = hammer2_seterr(ENOMEM, "out of memory");
		callback(arg, NULL, 0, error);
		return error;
	}
	pthread_mutex_init(&ld->lock, NULL);
	pthread_condattr_init(&cattr);		/* deadlines on the monotonic clock */
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&ld->cv, &cattr);
	pthread_condattr_destroy(&cattr);
	ld->refs = 1;
	ld->callback = callback;
	ld->arg = arg;
	pthread_mutex_lock(&ld->lock);
	for (;;) {
		struct timespec ts;
		int64_t deadline;

		if (ld->done || ld->taken ||
		    (ld->inflight && next >= cluster->nchains)) {
			if (ld->done)
				break;
			pthread_cond_wait(&ld->cv, &ld->lock);
			continue;
		}
		if (ld->inflight) {
			/* the one under way: waited for, up to its usual time */
			deadline = hammer2_mono_ns() + hedge_ns(chain);
			ts.tv_sec = deadline / 1000000000LL;
			ts.tv_nsec = deadline % 1000000000LL;
			while (!ld->done && !ld->taken && ld->inflight &&
			       hammer2_mono_ns() < deadline)
				pthread_cond_timedwait(&ld->cv, &ld->lock, &ts);
			if (ld->done || ld->taken)
				continue;
		}
		/* the next node that may serve, if any is left */
		while (next < cluster->nchains) {
			int i = (start + next++) % cluster->nchains;
			hammer2_cluster_item_t *item = &cluster->array[i];

			if (!may_serve(item, any_live))
				continue;
			chain = item->chain;
			pthread_mutex_unlock(&ld->lock);
			error = read_issue(ld, chain, i);
			pthread_mutex_lock(&ld->lock);
			if (error == 0)
				break;
			item->error = error;
		}
		if (!ld->inflight && !ld->done && next >= cluster->nchains)
			break;
	}
	done = ld->done;
	for (int i = 0; i < cluster->nchains; ++i) {
		if (!(ld->failed & (1u << i)))
			continue;
		cluster->array[i].error = error = ld->errors[i];
		if (error != ENOTCONN) {
			at[i] = cluster->array[i].chain->parent;
			damaged |= 1u << i;
		}
	}
	if (!done && ld->failed)
		hammer2_seterr(error, "%s", ld->why);
	pthread_mutex_unlock(&ld->lock);
	load_put(ld);
	if (!done) {
		callback(arg, NULL, 0, error);
		return error;
	}
	if (damaged)		/* chain: a copy of the element's bref */
		cluster_note_unread(cluster, at, damaged, chain->bref.key,
				    hammer2_bref_key_end(&chain->bref));
	return 0;
}
