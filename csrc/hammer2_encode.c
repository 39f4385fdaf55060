/*
 * Data block encoding for flush: compression and check code of logical
 * blocks, and a small pool of threads that encodes a batch of them side
 * by side.  Only the encoding runs in parallel: allocation, writes and
 * blockref updates stay in the flush's own order on its own thread, so a
 * flush writes the same bytes to the same places with or without it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lz4.h>
#include <zlib.h>
#include "hammer2.h"

#define ENCODE_THREADS_MAX	4

/*
 * Encode a logical data block for media: LZ4 (32-bit length + stream) or
 * zlib when that saves at least one allocation step, else stored raw.
 * Returns the method used and the physical size in *psize.
 */
int
hammer2_data_encode(int comp, int level, const uint8_t *src, size_t len,
		    uint8_t *dst, size_t *psize)
{
	size_t limit = len / 2 < HAMMER2_ALLOC_MIN ? 0 : len / 2;
	int n;

	if (comp == HAMMER2_COMP_LZ4 && limit > sizeof(int32_t)) {
		n = LZ4_compress_default((const char *)src, (char *)dst + 4, (int)len,
					 (int)(limit - 4));
		if (n > 0) {
			int32_t clen = n;

			memcpy(dst, &clen, 4);
			*psize = 1UL << hammer2_alloc_radix((size_t)n + 4);
			memset(dst + 4 + n, 0, *psize - 4 - (size_t)n);
			return HAMMER2_COMP_LZ4;
		}
	} else if (comp == HAMMER2_COMP_ZLIB && limit > 0) {
		uLongf out = limit;

		if (compress2(dst, &out, src, len, level ? level : 6) == Z_OK) {
			*psize = 1UL << hammer2_alloc_radix(out);
			memset(dst + out, 0, *psize - out);
			return HAMMER2_COMP_ZLIB;
		}
	}
	memcpy(dst, src, len);
	*psize = 1UL << hammer2_alloc_radix(len);
	memset(dst + len, 0, *psize - len);
	return HAMMER2_COMP_NONE;
}

/* One block: the hole test flush makes, else its encoding and check. */
static void
encode_one(hammer2_encjob_t *j)
{
	if (j->cached)
		return;
	if (j->zero_holes && hammer2_all_zero(j->src, j->len)) {
		j->zero = 1;
		return;
	}
	j->comp = hammer2_data_encode(j->comp, j->level, j->src, j->len,
				      j->dst, &j->psize);
	hammer2_check_set(&j->bref, j->check, j->dst, j->psize);
}

typedef struct encode_batch {
	struct encode_batch *next;
	hammer2_encjob_t *jobs;
	int		n;
	int		claimed;	/* next job to hand out */
	int		done;
	pthread_cond_t	cond;		/* done == n */
} encode_batch_t;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static encode_batch_t *pool_head;	/* batches with jobs to hand out */
static int pool_threads;		/* helper threads started */
static int encode_parallel = 1;

/* The next job of the first batch that has one (pool_lock held). */
static hammer2_encjob_t *
claim(encode_batch_t **bp)
{
	encode_batch_t *b = pool_head;

	if (b == NULL)
		return NULL;
	*bp = b;
	if (++b->claimed == b->n)
		pool_head = b->next;
	return &b->jobs[b->claimed - 1];
}

static void
finish(encode_batch_t *b)
{
	if (++b->done == b->n)
		pthread_cond_signal(&b->cond);
}

static void *
encode_worker(void *arg)
{
	encode_batch_t *b;
	hammer2_encjob_t *j;

	(void)arg;
	pthread_mutex_lock(&pool_lock);
	for (;;) {
		while ((j = claim(&b)) == NULL)
			pthread_cond_wait(&pool_cond, &pool_lock);
		pthread_mutex_unlock(&pool_lock);
		encode_one(j);
		pthread_mutex_lock(&pool_lock);
		finish(b);
	}
	return NULL;
}

static void
pool_start(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_attr_t attr;
	pthread_t t;

	hammer2_fork_guard(&pool_lock);
	if (ncpu > ENCODE_THREADS_MAX)
		ncpu = ENCODE_THREADS_MAX;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* the flushing thread encodes too: one helper fewer than CPUs */
	for (long i = 1; i < ncpu; ++i)
		if (pthread_create(&t, &attr, encode_worker, NULL) == 0)
			pool_threads++;
	pthread_attr_destroy(&attr);
}

/* Off: batches are encoded on the flushing thread alone (tests compare). */
int
hammer2_encode_set_parallel(int on)
{
	return __atomic_exchange_n(&encode_parallel, on, __ATOMIC_RELAXED);
}

/*
 * Encode every job, the calling thread among the pool's.  Returns when
 * all are done; each job's results are in it.
 */
void
hammer2_encode_batch(hammer2_encjob_t *jobs, int n)
{
	encode_batch_t b;
	encode_batch_t **pp;
	hammer2_encjob_t *j;
	encode_batch_t *jb;

	if (n > 1 && __atomic_load_n(&encode_parallel, __ATOMIC_RELAXED))
		pthread_once(&pool_once, pool_start);
	if (n < 2 || pool_threads == 0 ||
	    !__atomic_load_n(&encode_parallel, __ATOMIC_RELAXED)) {
		for (int i = 0; i < n; ++i)
			encode_one(&jobs[i]);
		return;
	}
	memset(&b, 0, sizeof(b));
	b.jobs = jobs;
	b.n = n;
	pthread_cond_init(&b.cond, NULL);
	pthread_mutex_lock(&pool_lock);
	for (pp = &pool_head; *pp; pp = &(*pp)->next)
		;
	*pp = &b;
	pthread_cond_broadcast(&pool_cond);
	/* take our own batch's jobs, as the helpers do */
	while (b.claimed < b.n && (j = claim(&jb)) != NULL) {
		pthread_mutex_unlock(&pool_lock);
		encode_one(j);
		pthread_mutex_lock(&pool_lock);
		finish(jb);
	}
	while (b.done < b.n)
		pthread_cond_wait(&b.cond, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
	pthread_cond_destroy(&b.cond);
}
