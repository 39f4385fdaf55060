/*
 * DIO layer: the device is accessed only in 64 KiB physical buffers.
 * Buffers are hashed by their base offset and refcounted; logical blocks
 * (1 KiB .. 64 KiB) are served from inside them.  A buffer whose last
 * reference goes away stays cached on an idle list (bounded, LRU) so a
 * re-read costs no I/O.  Concurrent loads of one buffer share one read.
 *
 * Asynchronous loads run on the I/O worker pool (hammer2_iopool.c), as
 * the writers of write-back do (hammer2_io_write.c).  A buffer loaded
 * while writes into it are still queued lays those writes over what it
 * read, so reads always see the newest data.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>
#include "hammer2.h"
#include "hammer2_io_priv.h"
#include "hammer2_iopool.h"

typedef struct dio_rdreq {
	hammer2_ioreq_t		req;
	hammer2_io_t		*dio;
} dio_rdreq_t;

static unsigned
dio_hash(hammer2_off_t pbase)
{
	uint64_t h = (pbase >> HAMMER2_PBUFRADIX) * 0x9E3779B97F4A7C15ULL;

	return (unsigned)(h >> 40) % HAMMER2_DIO_HASH;
}

static void
lru_remove(hammer2_dev_t *hmp, hammer2_io_t *dio)
{
	if (dio->lru_prev)
		dio->lru_prev->lru_next = dio->lru_next;
	else
		hmp->lru_head = dio->lru_next;
	if (dio->lru_next)
		dio->lru_next->lru_prev = dio->lru_prev;
	else
		hmp->lru_tail = dio->lru_prev;
	dio->lru_prev = dio->lru_next = NULL;
	--hmp->lru_count;
}

static void
lru_push(hammer2_dev_t *hmp, hammer2_io_t *dio)
{
	KKASSERT(dio->refs == 0 && dio->state == DIO_GOOD);
	dio->lru_prev = NULL;
	dio->lru_next = hmp->lru_head;
	if (hmp->lru_head)
		hmp->lru_head->lru_prev = dio;
	else
		hmp->lru_tail = dio;
	hmp->lru_head = dio;
	++hmp->lru_count;
}

static void
hash_remove(hammer2_dev_t *hmp, hammer2_io_t *dio)
{
	hammer2_io_t **pp = &hmp->iohash[dio_hash(dio->pbase)];

	while (*pp != dio)
		pp = &(*pp)->hnext;
	*pp = dio->hnext;
}

/*
 * Process-wide pool of free 64 KiB buffers: volumes come and go (tests,
 * tools reopening images) and recycling their buffers avoids paying page
 * faults for fresh memory on every open.  Its lock is held across fork,
 * so a child never inherits it held by a thread it lacks.
 */
#define DIO_POOL_MAX	512

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static void *pool[DIO_POOL_MAX];
static int pool_count;

static void
pool_guard(void)
{
	hammer2_fork_guard(&pool_lock);
}

/* A page-aligned 64 KiB buffer, from the pool when it has one. */
void *
hammer2_iobuf_alloc(void)
{
	void *buf = NULL;

	pthread_once(&pool_once, pool_guard);
	pthread_mutex_lock(&pool_lock);
	if (pool_count > 0)
		buf = pool[--pool_count];
	pthread_mutex_unlock(&pool_lock);
	if (buf == NULL && posix_memalign(&buf, 4096, HAMMER2_PBUFSIZE))
		buf = NULL;
	return buf;
}

void
hammer2_iobuf_free(void *buf)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_count < DIO_POOL_MAX) {
		pool[pool_count++] = buf;
		buf = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	free(buf);
}

void
hammer2_wreq_free(hammer2_wreq_t *w)
{
	if (w->hold.rele)
		w->hold.rele(w->hold.arg);
	else
		hammer2_iobuf_free((void *)w->data);
	free(w);
}

static void
dio_free(hammer2_io_t *dio)
{
	KASSERT(dio->refs == 0, ("buffer 0x%llx freed with %d references",
				 (unsigned long long)dio->pbase, dio->refs));
	/* writes still attached are done: a queued one holds a reference */
	while (dio->wpend) {
		hammer2_wreq_t *w = dio->wpend;

		dio->wpend = w->next;
		hammer2_wreq_free(w);
	}
	hammer2_iobuf_free(dio->data);
	free(dio);
}

/* The buffer for pbase if there is one (iolock held). */
static hammer2_io_t *
dio_find_locked(hammer2_dev_t *hmp, hammer2_off_t pbase)
{
	hammer2_io_t *dio;

	for (dio = hmp->iohash[dio_hash(pbase)]; dio; dio = dio->hnext)
		if (dio->pbase == pbase)
			break;
	return dio;
}

/* Find or create the buffer for pbase and take a reference (iolock held). */
hammer2_io_t *
hammer2_io_get_locked(hammer2_dev_t *hmp, hammer2_off_t pbase)
{
	unsigned h = dio_hash(pbase);
	hammer2_io_t *dio;

	KASSERT((pbase & HAMMER2_PBUFMASK64) == 0,
		("buffer base 0x%llx not 64 KiB aligned", (unsigned long long)pbase));
	if ((dio = dio_find_locked(hmp, pbase)) != NULL) {
		KKASSERT(dio->refs >= 0);
		if (dio->refs++ == 0)
			lru_remove(hmp, dio);
		return dio;
	}
	dio = calloc(1, sizeof(*dio));
	if (dio == NULL)
		return NULL;
	dio->data = hammer2_iobuf_alloc();
	if (dio->data == NULL) {
		free(dio);
		return NULL;
	}
	dio->hmp = hmp;
	dio->pbase = pbase;
	dio->refs = 1;
	dio->state = DIO_EMPTY;
	dio->hnext = hmp->iohash[h];
	hmp->iohash[h] = dio;
	return dio;
}

/* Read the whole buffer; the part past the end of the device reads zero. */
static int
dio_read(hammer2_io_t *dio)
{
	hammer2_dev_t *hmp = dio->hmp;
	size_t want = HAMMER2_PBUFSIZE;
	int error;

	if (dio->pbase + want > hmp->size)
		want = hmp->size - dio->pbase;
	__atomic_add_fetch(&hmp->io_reads, 1, __ATOMIC_RELAXED);
	error = hammer2_dev_pread(hmp, dio->data, want, dio->pbase);
	if (error)
		return error;
	memset(dio->data + want, 0, HAMMER2_PBUFSIZE - want);
	return 0;
}

/* A queued read or write is done: last, as the device may close at zero. */
void
hammer2_io_done(hammer2_dev_t *hmp)
{
	pthread_mutex_lock(&hmp->iolock);
	KKASSERT(hmp->io_inflight > 0);
	--hmp->io_inflight;
	pthread_cond_broadcast(&hmp->iocv);
	pthread_mutex_unlock(&hmp->iolock);
}

/*
 * A load finished: lay the writes queued meanwhile over the data, publish
 * the state and run the asynchronous waiters' callbacks (in this thread).
 */
static void
dio_complete(hammer2_io_t *dio, int error)
{
	hammer2_dev_t *hmp = dio->hmp;
	hammer2_iocb_t *waiters, *iocb;

	pthread_mutex_lock(&hmp->iolock);
	/*
	 * The one load in flight (the others wait for it) ends here.  A failed
	 * one leaves its writes attached: the device may not hold them yet, so
	 * the load that retries it lays them over.
	 */
	KKASSERT(dio->state == DIO_INPROG);
	while (error == 0 && dio->wpend) {
		hammer2_wreq_t *w = dio->wpend;

		dio->wpend = w->next;
		w->attached = 0;
		memcpy(dio->data + (w->off - dio->pbase), w->data,
		       (size_t)w->bytes);
		if (w->done)
			hammer2_wreq_free(w);
	}
	dio->error = error;
	dio->state = error ? DIO_ERROR : DIO_GOOD;
	waiters = dio->waiters;
	dio->waiters = NULL;
	pthread_cond_broadcast(&hmp->iocv);
	pthread_mutex_unlock(&hmp->iolock);
	while ((iocb = waiters) != NULL) {
		waiters = iocb->next;
		iocb->error = error;
		if (error)
			hammer2_io_putblk(&iocb->dio);
		iocb->callback(iocb);
	}
}

/*
 * Make sure the buffer is loaded; one thread reads, the others wait and
 * share its result.  A buffer an earlier read failed is read again.
 */
static int
dio_load(hammer2_io_t *dio)
{
	hammer2_dev_t *hmp = dio->hmp;
	int error, waited = 0;

	pthread_mutex_lock(&hmp->iolock);
	while (dio->state == DIO_INPROG) {
		pthread_cond_wait(&hmp->iocv, &hmp->iolock);
		waited = 1;
	}
	if (dio->state == DIO_GOOD || (dio->state == DIO_ERROR && waited)) {
		error = dio->error;
		pthread_mutex_unlock(&hmp->iolock);
		if (error)
			hammer2_seterr(error, "%s: read error in buffer 0x%llx",
				       hmp->path, (unsigned long long)dio->pbase);
		return error;
	}
	dio->state = DIO_INPROG;
	pthread_mutex_unlock(&hmp->iolock);

	error = dio_read(dio);
	dio_complete(dio, error);
	return error;
}


int
hammer2_io_range_check(hammer2_dev_t *hmp, hammer2_off_t off, int bytes)
{
	if (bytes <= 0 || bytes > HAMMER2_PBUFSIZE ||
	    (off & HAMMER2_PBUFMASK64) + (hammer2_off_t)bytes > HAMMER2_PBUFSIZE)
		return hammer2_seterr(EINVAL, "%s: block 0x%llx/%d crosses a "
				      "64 KiB buffer", hmp->path,
				      (unsigned long long)off, bytes);
	if (off >= hmp->size || hmp->size - off < (hammer2_off_t)bytes)
		return hammer2_seterr(EIO, "%s: block 0x%llx/%d lies beyond the "
				      "end of the device (%llu bytes; truncated "
				      "image?)", hmp->path,
				      (unsigned long long)off, bytes,
				      (unsigned long long)hmp->size);
	return 0;
}

static int
dio_acquire(hammer2_dev_t *hmp, hammer2_off_t off, int bytes,
	    hammer2_io_t **diop)
{
	hammer2_io_t *dio;
	int error;

	*diop = NULL;
	error = hammer2_io_range_check(hmp, off, bytes);
	if (error)
		return error;
	pthread_mutex_lock(&hmp->iolock);
	dio = hammer2_io_get_locked(hmp, off & ~HAMMER2_PBUFMASK64);
	pthread_mutex_unlock(&hmp->iolock);
	if (dio == NULL)
		return hammer2_seterr(ENOMEM, "out of memory for a DIO buffer");
	error = dio_load(dio);
	if (error) {
		hammer2_io_putblk(&dio);
		return error;
	}
	*diop = dio;
	return 0;
}

int
hammer2_io_bread(hammer2_dev_t *hmp, hammer2_off_t off, int bytes,
		 hammer2_io_t **diop)
{
	return dio_acquire(hmp, off, bytes, diop);
}

static void
dio_rdreq_run(hammer2_ioreq_t *req)
{
	hammer2_io_t *dio = ((dio_rdreq_t *)req)->dio;
	hammer2_dev_t *hmp = dio->hmp;

	free(req);
	dio_complete(dio, dio_read(dio));
	hammer2_io_done(hmp);
}

/*
 * Coalesced read-ahead: neighbouring buffers are read with one device
 * request of up to HAMMER2_IO_RUN_MAX buffers (a round trip per 64 KiB is
 * what limits a network backend), then split.  A run that fails is not
 * an error of its own: its buffers go back to empty (or, where loads
 * already wait on them, are read one by one), so every reader still gets
 * its own block's verdict.
 */
#define HAMMER2_IO_RUN_MAX	16

typedef struct dio_runreq {
	hammer2_ioreq_t		req;
	hammer2_dev_t		*hmp;
	int			n;
	hammer2_io_t		*dios[HAMMER2_IO_RUN_MAX];
} dio_runreq_t;

static void dio_rdreq_run(hammer2_ioreq_t *req);

/* A buffer whose run failed: retry it alone if loads wait on it. */
static void
dio_run_abandon(hammer2_io_t *dio)
{
	hammer2_dev_t *hmp = dio->hmp;
	dio_rdreq_t *rq = NULL;
	int waited;

	pthread_mutex_lock(&hmp->iolock);
	waited = dio->waiters != NULL;
	if (waited && (rq = malloc(sizeof(*rq))) != NULL) {
		++hmp->io_inflight;
	} else if (!waited) {
		KKASSERT(dio->state == DIO_INPROG);
		dio->state = DIO_EMPTY;		/* sync waiters read it themselves */
		pthread_cond_broadcast(&hmp->iocv);
	}
	pthread_mutex_unlock(&hmp->iolock);
	if (waited && rq == NULL)
		dio_complete(dio, hammer2_seterr(ENOMEM, "out of memory"));
	if (rq) {
		rq->req.run = dio_rdreq_run;
		rq->dio = dio;			/* the waiters hold it meanwhile */
		hammer2_iopool_submit(&rq->req);
	}
	hammer2_io_putblk(&dio);
}

static void
dio_runreq_run(hammer2_ioreq_t *req)
{
	dio_runreq_t *rq = (dio_runreq_t *)req;
	hammer2_dev_t *hmp = rq->hmp;
	hammer2_off_t base = rq->dios[0]->pbase;
	struct iovec iov[HAMMER2_IO_RUN_MAX];
	size_t left = (size_t)(hmp->size - base);
	int error;

	/* straight into the buffers; the part past the device end reads 0 */
	for (int i = 0; i < rq->n; ++i) {
		iov[i].iov_base = rq->dios[i]->data;
		iov[i].iov_len = left < HAMMER2_PBUFSIZE ? left : HAMMER2_PBUFSIZE;
		left -= iov[i].iov_len;
		memset(rq->dios[i]->data + iov[i].iov_len, 0,
		       HAMMER2_PBUFSIZE - iov[i].iov_len);
	}
	error = hammer2_dev_preadv(hmp, iov, rq->n, base);
	__atomic_add_fetch(&hmp->io_reads, (uint64_t)rq->n, __ATOMIC_RELAXED);
	for (int i = 0; i < rq->n; ++i) {
		hammer2_io_t *dio = rq->dios[i];

		if (error) {
			dio_run_abandon(dio);
			continue;
		}
		dio_complete(dio, 0);
		hammer2_io_putblk(&dio);
	}
	free(rq);
	hammer2_io_done(hmp);
}

/* Queue a read on the pool, counted in flight until its hammer2_io_done. */
static void
io_submit(hammer2_dev_t *hmp, hammer2_ioreq_t *req)
{
	pthread_mutex_lock(&hmp->iolock);
	++hmp->io_inflight;
	pthread_mutex_unlock(&hmp->iolock);
	hammer2_iopool_submit(req);
}

/*
 * Start loading the n buffers from pbase (64 KiB aligned) that are neither
 * cached nor being loaded; returns without waiting.
 */
void
hammer2_io_prefetch(hammer2_dev_t *hmp, hammer2_off_t pbase, int n)
{
	dio_runreq_t *rq = NULL;

	for (int i = 0; i <= n; ++i) {
		hammer2_off_t off = pbase + (hammer2_off_t)i * HAMMER2_PBUFSIZE;
		hammer2_io_t *dio = NULL;

		if (i < n && off < hmp->size) {
			pthread_mutex_lock(&hmp->iolock);
			dio = hammer2_io_get_locked(hmp, off);
			if (dio && dio->state == DIO_EMPTY) {
				dio->state = DIO_INPROG;
				pthread_mutex_unlock(&hmp->iolock);
			} else {
				pthread_mutex_unlock(&hmp->iolock);
				hammer2_io_putblk(&dio);
			}
		}
		if (dio && rq && rq->n < HAMMER2_IO_RUN_MAX) {
			rq->dios[rq->n++] = dio;
			continue;
		}
		if (rq)
			io_submit(hmp, &rq->req);
		rq = NULL;
		if (dio == NULL)
			continue;
		if ((rq = malloc(sizeof(*rq))) == NULL) {
			dio_run_abandon(dio);	/* read-ahead is only a hint */
			continue;
		}
		rq->req.run = dio_runreq_run;
		rq->hmp = hmp;
		rq->n = 0;
		rq->dios[rq->n++] = dio;
	}
}

/*
 * Add buffer pbase of hmp to run r: it extends the run (or lies in it), or
 * the run so far is started and r begins again from pbase.
 */
void
hammer2_io_run_add(hammer2_io_run_t *r, hammer2_dev_t *hmp,
		   hammer2_off_t pbase)
{
	hammer2_off_t end = r->base + (hammer2_off_t)r->n * HAMMER2_PBUFSIZE;

	if (r->n && hmp == r->hmp && pbase >= r->base && pbase <= end) {
		if (pbase == end)
			++r->n;
		return;
	}
	hammer2_io_run_flush(r);
	r->hmp = hmp;
	r->base = pbase;
	r->n = 1;
}

/* Start loading what run r gathered; r is empty again. */
void
hammer2_io_run_flush(hammer2_io_run_t *r)
{
	if (r->n)
		hammer2_io_prefetch(r->hmp, r->base, r->n);
	r->n = 0;
}

/* Whether a buffer for pbase is cached, loading or holding queued writes. */
int
hammer2_io_cached(hammer2_dev_t *hmp, hammer2_off_t pbase)
{
	hammer2_io_t *dio;

	pthread_mutex_lock(&hmp->iolock);
	dio = dio_find_locked(hmp, pbase);
	pthread_mutex_unlock(&hmp->iolock);
	return dio != NULL;
}

typedef struct dio_directreq {
	hammer2_ioreq_t		req;
	hammer2_dev_t		*hmp;
	hammer2_off_t		off;
	void			*buf;
	size_t			bytes;
	void			(*done)(void *arg, int error);
	void			*arg;
} dio_directreq_t;

static void
dio_directreq_run(hammer2_ioreq_t *req)
{
	dio_directreq_t *rq = (dio_directreq_t *)req;
	hammer2_dev_t *hmp = rq->hmp;

	rq->done(rq->arg, hammer2_dev_pread(hmp, rq->buf, rq->bytes, rq->off));
	free(rq);
	hammer2_io_done(hmp);
}

/*
 * Read bytes at off straight into buf on the pool, bypassing the cache,
 * then call done(arg, error) there.  For ranges no buffer holds (see
 * hammer2_io_cached): the device then has their newest data.
 */
int
hammer2_io_direct(hammer2_dev_t *hmp, hammer2_off_t off, void *buf,
		  size_t bytes, void (*done)(void *arg, int error), void *arg)
{
	dio_directreq_t *rq = malloc(sizeof(*rq));

	if (rq == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	*rq = (dio_directreq_t){ .req.run = dio_directreq_run, .hmp = hmp,
				 .off = off, .buf = buf, .bytes = bytes,
				 .done = done, .arg = arg };
	io_submit(hmp, &rq->req);
	return 0;
}

/*
 * Callback interface (see struct hammer2_iocb).  An asynchronous load of
 * a buffer already being read joins that read's waiters; the first one
 * queues the read.
 */
void
hammer2_io_load_async(hammer2_dev_t *hmp, hammer2_iocb_t *iocb)
{
	hammer2_io_t *dio;
	dio_rdreq_t *rq;
	int error;

	if (!(iocb->flags & HAMMER2_IOCB_ASYNC)) {
		iocb->error = dio_acquire(hmp, iocb->off, iocb->bytes, &iocb->dio);
		iocb->callback(iocb);
		return;
	}
	iocb->dio = NULL;
	error = hammer2_io_range_check(hmp, iocb->off, iocb->bytes);
	rq = error ? NULL : malloc(sizeof(*rq));
	if (error == 0 && rq == NULL)
		error = hammer2_seterr(ENOMEM, "out of memory for a read request");
	pthread_mutex_lock(&hmp->iolock);
	dio = error ? NULL : hammer2_io_get_locked(hmp, iocb->off & ~HAMMER2_PBUFMASK64);
	if (error == 0 && dio == NULL)
		error = hammer2_seterr(ENOMEM, "out of memory for a DIO buffer");
	if (error) {
		pthread_mutex_unlock(&hmp->iolock);
		free(rq);
		iocb->error = error;
		iocb->callback(iocb);
		return;
	}
	iocb->dio = dio;
	if (dio->state == DIO_GOOD) {
		pthread_mutex_unlock(&hmp->iolock);
		free(rq);
		iocb->error = 0;
		iocb->callback(iocb);
		return;
	}
	/* empty, or an earlier read failed (held by others): read it again */
	iocb->next = dio->waiters;
	dio->waiters = iocb;
	if (dio->state == DIO_INPROG) {
		pthread_mutex_unlock(&hmp->iolock);
		free(rq);
		return;
	}
	dio->state = DIO_INPROG;
	++hmp->io_inflight;
	pthread_mutex_unlock(&hmp->iolock);
	rq->req.run = dio_rdreq_run;
	rq->dio = dio;
	hammer2_iopool_submit(&rq->req);
}

void
hammer2_io_putblk(hammer2_io_t **diop)
{
	hammer2_io_t *dio = *diop;
	hammer2_dev_t *hmp;

	if (dio == NULL)
		return;
	*diop = NULL;
	hmp = dio->hmp;
	pthread_mutex_lock(&hmp->iolock);
	KKASSERT(dio->refs > 0);
	if (--dio->refs > 0) {
		pthread_mutex_unlock(&hmp->iolock);
		return;
	}
	if (dio->state != DIO_GOOD || dio->invalid) {
		/* failed buffers are not cached: the next access retries */
		hash_remove(hmp, dio);
		pthread_mutex_unlock(&hmp->iolock);
		dio_free(dio);
		return;
	}
	lru_push(hmp, dio);
	if (hmp->lru_count > HAMMER2_DIO_CACHE_MAX) {
		hammer2_io_t *victim = hmp->lru_tail;

		lru_remove(hmp, victim);
		hash_remove(hmp, victim);
		pthread_mutex_unlock(&hmp->iolock);
		dio_free(victim);
		return;
	}
	pthread_mutex_unlock(&hmp->iolock);
}

/*
 * Copy [off, off + bytes) out of its buffer if that is loaded: no I/O and
 * no check (a hint, for planning read-ahead).  0 when it is not there.
 */
int
hammer2_io_peek(hammer2_dev_t *hmp, hammer2_off_t off, void *buf, int bytes)
{
	hammer2_off_t pbase = off & ~HAMMER2_PBUFMASK64;
	hammer2_io_t *dio;
	int found = 0;

	if (bytes <= 0 || (off & HAMMER2_PBUFMASK64) + (hammer2_off_t)bytes >
			  HAMMER2_PBUFSIZE)
		return 0;
	pthread_mutex_lock(&hmp->iolock);
	dio = dio_find_locked(hmp, pbase);
	if (dio && dio->state == DIO_GOOD) {
		memcpy(buf, dio->data + (off - pbase), (size_t)bytes);
		found = 1;
	}
	pthread_mutex_unlock(&hmp->iolock);
	return found;
}

/* Drop every idle cached buffer, so the next reads go to the device. */
void
hammer2_io_purge(hammer2_dev_t *hmp)
{
	hammer2_io_t *dio;

	pthread_mutex_lock(&hmp->iolock);
	while ((dio = hmp->lru_tail) != NULL) {
		lru_remove(hmp, dio);
		hash_remove(hmp, dio);
		dio_free(dio);
	}
	pthread_mutex_unlock(&hmp->iolock);
}

void *
hammer2_io_data(hammer2_io_t *dio, hammer2_off_t off)
{
	KASSERT(off >= dio->pbase && off - dio->pbase < HAMMER2_PBUFSIZE,
		("0x%llx outside buffer 0x%llx", (unsigned long long)off,
		 (unsigned long long)dio->pbase));
	return dio->data + (off - dio->pbase);
}

uint64_t
hammer2_io_crc_mask(hammer2_io_t *dio, hammer2_off_t off, int bytes)
{
	int first = (int)((off - dio->pbase) >> HAMMER2_RADIX_MIN);
	int count = (bytes + HAMMER2_ALLOC_MIN - 1) >> HAMMER2_RADIX_MIN;

	KASSERT(off >= dio->pbase && bytes > 0 &&
		off - dio->pbase + (hammer2_off_t)bytes <= HAMMER2_PBUFSIZE,
		("0x%llx/%d outside buffer 0x%llx", (unsigned long long)off,
		 bytes, (unsigned long long)dio->pbase));
	if (count >= 64)
		return ~0ULL;
	return ((1ULL << count) - 1) << first;
}

/*
 * Verify the block at off against bref's check code, once per load: the
 * pieces verified are remembered.  A buffer that fails is not cached past
 * its last user, so a retry reads the device again (a corruption in
 * transit does not stick).
 */
int
hammer2_io_verify(hammer2_io_t *dio, hammer2_off_t off, int bytes,
		  const hammer2_blockref_t *bref)
{
	hammer2_dev_t *hmp = dio->hmp;
	uint64_t mask = hammer2_io_crc_mask(dio, off, bytes);
	int error;

	if ((__atomic_load_n(&dio->crc_good_mask, __ATOMIC_ACQUIRE) & mask) ==
	    mask)
		return 0;
	error = hammer2_check_verify(bref, dio->data + (off - dio->pbase),
				     (size_t)bytes);
	if (error == 0) {
		__atomic_or_fetch(&dio->crc_good_mask, mask, __ATOMIC_RELEASE);
		return 0;
	}
	pthread_mutex_lock(&hmp->iolock);
	dio->invalid = 1;
	pthread_mutex_unlock(&hmp->iolock);
	return error;
}

/*
 * Remember that the block at off verified against its blockref, checked
 * by a caller that ignores the mask (fsck): reads of it through the same
 * buffer need not hash it again.
 */
void
hammer2_io_set_verified(hammer2_io_t *dio, hammer2_off_t off, int bytes)
{
	__atomic_or_fetch(&dio->crc_good_mask, hammer2_io_crc_mask(dio, off, bytes),
			  __ATOMIC_RELEASE);
}

void
hammer2_io_init(hammer2_dev_t *hmp)
{
	pthread_mutex_init(&hmp->iolock, NULL);
	pthread_cond_init(&hmp->iocv, NULL);
}

/* Free every cached buffer once queued I/O has drained. */
/* Wait until no queued read or write is left (their callbacks have run). */
void
hammer2_io_settle(hammer2_dev_t *hmp)
{
	pthread_mutex_lock(&hmp->iolock);
	while (hmp->io_inflight > 0)
		pthread_cond_wait(&hmp->iocv, &hmp->iolock);
	KKASSERT(hmp->wb_pending == 0);
	pthread_mutex_unlock(&hmp->iolock);
}

void
hammer2_io_cleanup(hammer2_dev_t *hmp)
{
	hammer2_io_settle(hmp);
	free(hmp->wb_errmsg);
	for (int h = 0; h < HAMMER2_DIO_HASH; ++h) {
		while (hmp->iohash[h]) {
			hammer2_io_t *dio = hmp->iohash[h];

			hmp->iohash[h] = dio->hnext;
			dio_free(dio);
		}
	}
	hmp->lru_head = hmp->lru_tail = NULL;
	hmp->lru_count = 0;
	pthread_cond_destroy(&hmp->iocv);
	pthread_mutex_destroy(&hmp->iolock);
}
