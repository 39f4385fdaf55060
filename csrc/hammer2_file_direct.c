/*
 * Direct file reads.  A large read takes the whole, uncompressed 64 KiB
 * blocks of its window that no DIO buffer holds straight from the device
 * into the caller's buffer, in runs of neighbouring blocks on the I/O
 * pool, and verifies each there while it is hot: nothing is cached and
 * nothing copied (the copy out of the DIO cache cost a streaming reader
 * about a third of its CPU).  The reader meanwhile reads the window's
 * other blocks the usual way.  A block whose read or check fails is
 * counted against its node and then read again the usual way, which fails
 * over to another node and reports as it always does.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"
#include "hammer2_cluster.h"

/*
 * Windows of direct_min bytes or more bypass the cache (smaller ones do
 * better with read-ahead, which overlaps the caller's next window).  One
 * is split in about four device reads (DIRECT_SPLIT) of 4 to 16 blocks:
 * enough in flight to keep the device busy, few enough that each is
 * worth its round trip.  Both measured over NBD with 256 KiB to 4 MiB
 * windows (bench/bench_devices.py).
 */
#define DIRECT_MIN	(1 << 20)
#define DIRECT_SPLIT	4
#define DIRECT_RUN_MIN	4
#define DIRECT_RUN_MAX	16

typedef struct direct_run {
	hammer2_direct_t	*d;
	hammer2_dev_t		*hmp;
	int			first;		/* its blocks: [first, first + n) */
	int			n;
} direct_run_t;

struct hammer2_direct {
	hammer2_off_t		base;		/* logical offset of block 0 */
	uint8_t			*buf;		/* the caller's, at base */
	int			nblocks;
	int			runmax;		/* blocks in one device read */
	uint8_t			*chosen;	/* read directly (set up front) */
	uint8_t			*failed;	/* ... and failed (by the pool) */
	hammer2_blockref_t	*brefs;		/* each chosen block's own */
	int			cursor;		/* hammer2_direct_next_failed */
	pthread_mutex_t		lock;
	pthread_cond_t		cv;
	int			inflight;	/* runs not yet done */
};

static size_t direct_min = DIRECT_MIN;

/* Set the threshold (the torture lowers it to reach small files); the old. */
size_t
hammer2_direct_set_min(size_t bytes)
{
	return __atomic_exchange_n(&direct_min, bytes, __ATOMIC_RELAXED);
}

static void
run_done(void *arg, int error)
{
	direct_run_t *run = arg;
	hammer2_direct_t *d = run->d;

	for (int i = run->first; i < run->first + run->n; ++i) {
		const hammer2_blockref_t *bref = &d->brefs[i];
		int e = error;
		char what[200];

		if (e == 0)
			e = hammer2_check_verify(bref, d->buf +
						 (size_t)i * HAMMER2_PBUFSIZE,
						 HAMMER2_PBUFSIZE);
		if (e == 0)
			continue;
		d->failed[i] = 1;
		snprintf(what, sizeof(what), "data block 0x%llx at 0x%llx: %s",
			 (unsigned long long)bref->key,
			 (unsigned long long)(bref->data_off & HAMMER2_OFF_MASK),
			 hammer2_errmsg());
		hammer2_node_read_error(run->hmp, e, what);
	}
	pthread_mutex_lock(&d->lock);
	if (--d->inflight == 0)
		pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->lock);
	free(run);
}

static void
run_submit(hammer2_direct_t *d, direct_run_t *run)
{
	hammer2_off_t pbase = d->brefs[run->first].data_off & HAMMER2_OFF_MASK;

	pthread_mutex_lock(&d->lock);
	++d->inflight;
	pthread_mutex_unlock(&d->lock);
	if (hammer2_io_direct(run->hmp, pbase, d->buf + (size_t)run->first *
			      HAMMER2_PBUFSIZE, (size_t)run->n * HAMMER2_PBUFSIZE,
			      run_done, run) == 0)
		return;
	/* not issued: its blocks are read the usual way */
	memset(d->chosen + run->first, 0, (size_t)run->n);
	pthread_mutex_lock(&d->lock);
	--d->inflight;
	pthread_mutex_unlock(&d->lock);
	free(run);
}

/* The node's chain to read the block from directly; NULL: the usual way. */
static hammer2_chain_t *
direct_chain(hammer2_direct_t *d, hammer2_cluster_t *cluster)
{
	hammer2_chain_t *chain = hammer2_cluster_load_chain(cluster);
	const hammer2_blockref_t *bref;
	hammer2_off_t pbase;

	if (chain == NULL ||
	    (chain->flags & (HAMMER2_CHAIN_LOADED | HAMMER2_CHAIN_MODIFIED)))
		return NULL;		/* in memory already, or no node */
	bref = &chain->bref;
	pbase = bref->data_off & HAMMER2_OFF_MASK;
	if (bref->type != HAMMER2_BREF_TYPE_DATA ||
	    bref->keybits != HAMMER2_PBUFRADIX ||
	    (int)(bref->data_off & HAMMER2_OFF_MASK_RADIX) != HAMMER2_PBUFRADIX ||
	    HAMMER2_DEC_COMP(bref->methods) != HAMMER2_COMP_NONE ||
	    bref->key < d->base || (bref->key & HAMMER2_PBUFMASK64) ||
	    ((bref->key - d->base) >> HAMMER2_PBUFRADIX) >= (uint64_t)d->nblocks ||
	    (pbase & HAMMER2_PBUFMASK64) ||
	    pbase >= chain->hmp->size ||
	    chain->hmp->size - pbase < HAMMER2_PBUFSIZE ||
	    hammer2_io_cached(chain->hmp, pbase))
		return NULL;
	return chain;
}

void
hammer2_direct_free(hammer2_direct_t *d)
{
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->lock);
	free(d->chosen);
	free(d->brefs);
	free(d);
}

static hammer2_direct_t *
direct_alloc(hammer2_off_t off, uint8_t *buf, size_t len)
{
	hammer2_off_t base = (off + HAMMER2_PBUFMASK64) & ~HAMMER2_PBUFMASK64;
	hammer2_direct_t *d;

	if (len < __atomic_load_n(&direct_min, __ATOMIC_RELAXED) ||
	    off + len < base + HAMMER2_PBUFSIZE)
		return NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->base = base;
	d->buf = buf + (base - off);
	d->nblocks = (int)((off + len - base) >> HAMMER2_PBUFRADIX);
	d->runmax = d->nblocks / DIRECT_SPLIT;
	if (d->runmax < DIRECT_RUN_MIN)
		d->runmax = DIRECT_RUN_MIN;
	if (d->runmax > DIRECT_RUN_MAX)
		d->runmax = DIRECT_RUN_MAX;
	d->chosen = calloc(2, (size_t)d->nblocks);
	d->brefs = malloc((size_t)d->nblocks * sizeof(*d->brefs));
	if (d->chosen == NULL || d->brefs == NULL) {
		free(d->chosen);
		free(d->brefs);
		free(d);
		return NULL;
	}
	d->failed = d->chosen + d->nblocks;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cv, NULL);
	return d;
}

/*
 * Start the window's direct reads; NULL when it takes none (too small,
 * every block cached, compressed or in memory, or out of memory: the
 * usual way serves them all).
 */
hammer2_direct_t *
hammer2_direct_start(hammer2_cluster_t *ip, hammer2_off_t off, uint8_t *buf,
		     size_t len)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_direct_t *d = direct_alloc(off, buf, len);
	direct_run_t *run = NULL;
	hammer2_off_t run_pbase = 0, end;
	hammer2_key_t next;
	int any = 0;

	if (d == NULL)
		return NULL;
	end = d->base + ((hammer2_off_t)d->nblocks << HAMMER2_PBUFRADIX);
	cparent = hammer2_cluster_lookup_init(ip, HAMMER2_LOOKUP_SHARED);
	if (cparent == NULL) {
		hammer2_direct_free(d);
		return NULL;
	}
	cluster = hammer2_cluster_lookup(cparent, &next, d->base, end - 1,
					 HAMMER2_LOOKUP_SHARED |
					 HAMMER2_LOOKUP_NODATA);
	while (cluster) {
		hammer2_chain_t *chain = direct_chain(d, cluster);

		if (chain) {
			hammer2_off_t pbase = chain->bref.data_off & HAMMER2_OFF_MASK;
			int i = (int)((chain->bref.key - d->base) >>
				      HAMMER2_PBUFRADIX);

			d->brefs[i] = chain->bref;
			d->chosen[i] = 1;
			any = 1;
			/* extend the run of neighbours, or start one */
			if (run && run->hmp == chain->hmp && run->n < d->runmax &&
			    i == run->first + run->n &&
			    pbase == run_pbase + ((hammer2_off_t)run->n <<
						  HAMMER2_PBUFRADIX)) {
				++run->n;
			} else {
				if (run)
					run_submit(d, run);
				run = malloc(sizeof(*run));
				if (run)
					*run = (direct_run_t){ d, chain->hmp,
							       i, 1 };
				else
					d->chosen[i] = 0;
				run_pbase = pbase;
			}
		}
		cluster = hammer2_cluster_next(cparent, cluster, &next, next,
					       end - 1, HAMMER2_LOOKUP_SHARED |
					       HAMMER2_LOOKUP_NODATA);
	}
	hammer2_cluster_lookup_done(cparent);
	if (run)
		run_submit(d, run);
	if (!any) {
		hammer2_direct_free(d);
		return NULL;
	}
	return d;
}

/* Whether the block at lbase is read directly (the usual way skips it). */
int
hammer2_direct_chosen(const hammer2_direct_t *d, hammer2_off_t lbase)
{
	return lbase >= d->base && (lbase & HAMMER2_PBUFMASK64) == 0 &&
	       ((lbase - d->base) >> HAMMER2_PBUFRADIX) < (uint64_t)d->nblocks &&
	       d->chosen[(lbase - d->base) >> HAMMER2_PBUFRADIX];
}

/* Wait for every direct read; the caller's buffer is then ours no more. */
void
hammer2_direct_wait(hammer2_direct_t *d)
{
	pthread_mutex_lock(&d->lock);
	while (d->inflight > 0)
		pthread_cond_wait(&d->cv, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

/* After the wait: the next block that failed (0 when none is left). */
int
hammer2_direct_next_failed(hammer2_direct_t *d, hammer2_off_t *lbasep)
{
	while (d->cursor < d->nblocks) {
		int i = d->cursor++;

		if (d->chosen[i] && d->failed[i]) {
			*lbasep = d->base + ((hammer2_off_t)i << HAMMER2_PBUFRADIX);
			return 1;
		}
	}
	return 0;
}
