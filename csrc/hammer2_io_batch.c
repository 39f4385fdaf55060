/*
 * Batched asynchronous buffer loads: read a list of 64 KiB buffers with
 * at most qdepth loads in flight (read-ahead, benchmarks, tests of the
 * asynchronous path).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

typedef struct batch {
	pthread_mutex_t	lock;
	pthread_cond_t	cv;
	int		inflight;
	int		error;
	char		msg[256];
} batch_t;

static void
batch_done(hammer2_iocb_t *iocb)
{
	batch_t *b = iocb->arg;

	hammer2_io_putblk(&iocb->dio);
	pthread_mutex_lock(&b->lock);
	if (iocb->error && b->error == 0) {
		b->error = iocb->error;
		snprintf(b->msg, sizeof(b->msg), "%s", hammer2_errmsg());
	}
	--b->inflight;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->lock);
	free(iocb);
}

int
hammer2_io_readmany(hammer2_dev_t *hmp, const hammer2_off_t *offs,
		    size_t count, int qdepth)
{
	batch_t b;
	int error = 0;

	if (qdepth < 1)
		qdepth = 1;
	memset(&b, 0, sizeof(b));
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cv, NULL);
	for (size_t i = 0; i < count && error == 0; ++i) {
		hammer2_off_t base = offs[i] & ~HAMMER2_PBUFMASK64;
		hammer2_iocb_t *iocb = calloc(1, sizeof(*iocb));

		if (iocb == NULL) {
			error = hammer2_seterr(ENOMEM, "out of memory");
			break;
		}
		pthread_mutex_lock(&b.lock);
		while (b.inflight >= qdepth)
			pthread_cond_wait(&b.cv, &b.lock);
		++b.inflight;
		error = b.error;
		pthread_mutex_unlock(&b.lock);
		iocb->callback = batch_done;
		iocb->arg = &b;
		iocb->flags = HAMMER2_IOCB_ASYNC;
		iocb->off = base;
		iocb->bytes = base < hmp->size && hmp->size - base < HAMMER2_PBUFSIZE ?
			      (int)(hmp->size - base) : HAMMER2_PBUFSIZE;
		hammer2_io_load_async(hmp, iocb);
	}
	pthread_mutex_lock(&b.lock);
	while (b.inflight > 0)
		pthread_cond_wait(&b.cv, &b.lock);
	pthread_mutex_unlock(&b.lock);
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.lock);
	if (b.error)
		return hammer2_seterr(b.error, "%s", b.msg);
	return error;
}

uint64_t
hammer2_io_nreads(hammer2_dev_t *hmp)
{
	return __atomic_load_n(&hmp->io_reads, __ATOMIC_RELAXED);
}
