/*
 * DIO layer: the device is accessed only in 64 KiB physical buffers.
 * Buffers are hashed by their base offset and refcounted; logical blocks
 * (1 KiB .. 64 KiB) are served from inside them.  A buffer whose last
 * reference goes away stays cached on an idle list (bounded, LRU) so a
 * re-read costs no I/O.  Concurrent loads of one buffer share one read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hammer2.h"

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
 * faults for fresh memory on every open.
 */
#define DIO_POOL_MAX	512

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *pool[DIO_POOL_MAX];
static int pool_count;

static void *
buf_alloc(void)
{
	void *buf = NULL;

	pthread_mutex_lock(&pool_lock);
	if (pool_count > 0)
		buf = pool[--pool_count];
	pthread_mutex_unlock(&pool_lock);
	if (buf == NULL && posix_memalign(&buf, 4096, HAMMER2_PBUFSIZE))
		buf = NULL;
	return buf;
}

static void
buf_free(void *buf)
{
	pthread_mutex_lock(&pool_lock);
	if (pool_count < DIO_POOL_MAX) {
		pool[pool_count++] = buf;
		buf = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	free(buf);
}

static void
dio_free(hammer2_io_t *dio)
{
	buf_free(dio->data);
	free(dio);
}

/* Find or create the buffer for pbase and take a reference (iolock held). */
static hammer2_io_t *
dio_get_locked(hammer2_dev_t *hmp, hammer2_off_t pbase)
{
	unsigned h = dio_hash(pbase);
	hammer2_io_t *dio;

	for (dio = hmp->iohash[h]; dio; dio = dio->hnext) {
		if (dio->pbase == pbase) {
			if (dio->refs++ == 0)
				lru_remove(hmp, dio);
			return dio;
		}
	}
	dio = calloc(1, sizeof(*dio));
	if (dio == NULL)
		return NULL;
	dio->data = buf_alloc();
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
	error = hammer2_dev_pread(hmp, dio->data, want, dio->pbase);
	if (error)
		return error;
	memset(dio->data + want, 0, HAMMER2_PBUFSIZE - want);
	return 0;
}

/* Make sure the buffer is loaded; one thread reads, the others wait. */
static int
dio_load(hammer2_io_t *dio)
{
	hammer2_dev_t *hmp = dio->hmp;
	int error;

	pthread_mutex_lock(&hmp->iolock);
	while (dio->state == DIO_INPROG)
		pthread_cond_wait(&hmp->iocv, &hmp->iolock);
	if (dio->state == DIO_GOOD || dio->state == DIO_ERROR) {
		error = dio->error;
		pthread_mutex_unlock(&hmp->iolock);
		if (error)
			hammer2_seterr(error, "%s: earlier read error in buffer "
				       "0x%llx", hmp->path,
				       (unsigned long long)dio->pbase);
		return error;
	}
	dio->state = DIO_INPROG;
	pthread_mutex_unlock(&hmp->iolock);

	error = dio_read(dio);

	pthread_mutex_lock(&hmp->iolock);
	dio->error = error;
	dio->state = error ? DIO_ERROR : DIO_GOOD;
	pthread_cond_broadcast(&hmp->iocv);
	pthread_mutex_unlock(&hmp->iolock);
	return error;
}

static uint64_t crc_mask(hammer2_io_t *dio, hammer2_off_t off, int bytes);

static int
dio_range_check(hammer2_dev_t *hmp, hammer2_off_t off, int bytes)
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
	error = dio_range_check(hmp, off, bytes);
	if (error)
		return error;
	pthread_mutex_lock(&hmp->iolock);
	dio = dio_get_locked(hmp, off & ~HAMMER2_PBUFMASK64);
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

/*
 * Callback interface.  The load is performed by the calling thread for
 * now; the callback contract does not change when a worker pool or
 * io_uring completes it instead.
 */
void
hammer2_io_load_async(hammer2_dev_t *hmp, hammer2_iocb_t *iocb)
{
	iocb->error = dio_acquire(hmp, iocb->off, iocb->bytes, &iocb->dio);
	iocb->callback(iocb);
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
	if (--dio->refs > 0) {
		pthread_mutex_unlock(&hmp->iolock);
		return;
	}
	if (dio->state != DIO_GOOD) {
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
 * Write a block through to the device, keeping a cached buffer that holds
 * it coherent (its verified mask is cleared for the rewritten pieces).
 */
int
hammer2_io_write(hammer2_dev_t *hmp, hammer2_off_t off, const void *data,
		 int bytes)
{
	hammer2_off_t pbase = off & ~HAMMER2_PBUFMASK64;
	hammer2_io_t *dio;
	int error;

	error = dio_range_check(hmp, off, bytes);
	if (error)
		return error;
	error = hammer2_dev_pwrite(hmp, data, (size_t)bytes, off);
	if (error)
		return error;
	pthread_mutex_lock(&hmp->iolock);
	for (dio = hmp->iohash[dio_hash(pbase)]; dio; dio = dio->hnext) {
		if (dio->pbase == pbase && dio->state == DIO_GOOD) {
			memcpy(dio->data + (off - pbase), data, (size_t)bytes);
			__atomic_and_fetch(&dio->crc_good_mask,
					   ~crc_mask(dio, off, bytes),
					   __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&hmp->iolock);
	return 0;
}

void *
hammer2_io_data(hammer2_io_t *dio, hammer2_off_t off)
{
	return dio->data + (off - dio->pbase);
}

static uint64_t
crc_mask(hammer2_io_t *dio, hammer2_off_t off, int bytes)
{
	int first = (int)((off - dio->pbase) >> HAMMER2_RADIX_MIN);
	int count = (bytes + HAMMER2_ALLOC_MIN - 1) >> HAMMER2_RADIX_MIN;

	if (count >= 64)
		return ~0ULL;
	return ((1ULL << count) - 1) << first;
}

/* Whether this exact piece was already verified since it was loaded. */
int
hammer2_io_crc_good(hammer2_io_t *dio, hammer2_off_t off, int bytes)
{
	uint64_t mask = crc_mask(dio, off, bytes);

	return (__atomic_load_n(&dio->crc_good_mask, __ATOMIC_ACQUIRE) & mask)
		== mask;
}

void
hammer2_io_crc_setmask(hammer2_io_t *dio, hammer2_off_t off, int bytes)
{
	__atomic_or_fetch(&dio->crc_good_mask, crc_mask(dio, off, bytes),
			  __ATOMIC_RELEASE);
}

void
hammer2_io_init(hammer2_dev_t *hmp)
{
	pthread_mutex_init(&hmp->iolock, NULL);
	pthread_cond_init(&hmp->iocv, NULL);
}

/* Free every cached buffer; all references must be gone by now. */
void
hammer2_io_cleanup(hammer2_dev_t *hmp)
{
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
