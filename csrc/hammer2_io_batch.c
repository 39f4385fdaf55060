/*
 * Batched asynchronous buffer loads: read a list of 64 KiB buffers with
 * at most qdepth loads in flight (benchmarks, tests of the asynchronous
 * path).  Each completion issues the next load from the completing
 * thread, so the queue stays full without a round trip through the
 * caller; the caller only waits for the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

typedef struct batch {
	hammer2_dev_t		*hmp;
	const hammer2_off_t	*offs;
	size_t			count;
	size_t			next;		/* next offset to issue */
	pthread_mutex_t		lock;
	pthread_cond_t		cv;
	int			inflight;	/* iocbs issuing or loading */
	int			error;
	char			msg[256];
} batch_t;

/* The iocb this thread is issuing: its completion ran inline if set. */
static __thread hammer2_iocb_t *issuing;
static __thread int inline_done;

static void batch_issue(batch_t *b, hammer2_iocb_t *iocb);

static void
batch_done(hammer2_iocb_t *iocb)
{
	batch_t *b = iocb->arg;

	hammer2_io_putblk(&iocb->dio);
	if (iocb->error) {
		pthread_mutex_lock(&b->lock);
		if (b->error == 0) {
			b->error = iocb->error;
			snprintf(b->msg, sizeof(b->msg), "%s", hammer2_errmsg());
		}
		pthread_mutex_unlock(&b->lock);
	}
	if (issuing == iocb)
		inline_done = 1;	/* the issuing loop goes on */
	else
		batch_issue(b, iocb);
}

/* Issue loads on iocb until one goes asynchronous or the list ends. */
static void
batch_issue(batch_t *b, hammer2_iocb_t *iocb)
{
	for (;;) {
		hammer2_iocb_t *prev_issuing;
		hammer2_off_t base;
		int prev_done, done;
		size_t i;

		pthread_mutex_lock(&b->lock);
		if (b->next >= b->count || b->error) {
			if (--b->inflight == 0)
				pthread_cond_signal(&b->cv);
			pthread_mutex_unlock(&b->lock);
			free(iocb);
			return;
		}
		i = b->next++;
		pthread_mutex_unlock(&b->lock);
		base = b->offs[i] & ~HAMMER2_PBUFMASK64;
		memset(iocb, 0, sizeof(*iocb));
		iocb->callback = batch_done;
		iocb->arg = b;
		iocb->flags = HAMMER2_IOCB_ASYNC;
		iocb->off = base;
		iocb->bytes = base < b->hmp->size &&
			      b->hmp->size - base < HAMMER2_PBUFSIZE ?
			      (int)(b->hmp->size - base) : HAMMER2_PBUFSIZE;
		/* saved: completing a shared read may nest another issue */
		prev_issuing = issuing;
		prev_done = inline_done;
		issuing = iocb;
		inline_done = 0;
		hammer2_io_load_async(b->hmp, iocb);
		done = inline_done;
		issuing = prev_issuing;
		inline_done = prev_done;
		if (!done)
			return;		/* a worker completes it and goes on */
	}
}

int
hammer2_io_readmany(hammer2_dev_t *hmp, const hammer2_off_t *offs,
		    size_t count, int qdepth)
{
	batch_t b;

	if (qdepth < 1)
		qdepth = 1;
	memset(&b, 0, sizeof(b));
	b.hmp = hmp;
	b.offs = offs;
	b.count = count;
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cv, NULL);
	b.inflight = qdepth;
	for (int q = 0; q < qdepth; ++q) {
		hammer2_iocb_t *iocb = malloc(sizeof(*iocb));

		if (iocb == NULL) {
			pthread_mutex_lock(&b.lock);
			if (b.error == 0) {
				b.error = ENOMEM;
				snprintf(b.msg, sizeof(b.msg), "out of memory");
			}
			b.inflight -= qdepth - q;
			pthread_mutex_unlock(&b.lock);
			break;
		}
		batch_issue(&b, iocb);
	}
	pthread_mutex_lock(&b.lock);
	while (b.inflight > 0)
		pthread_cond_wait(&b.cv, &b.lock);
	pthread_mutex_unlock(&b.lock);
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.lock);
	if (b.error)
		return hammer2_seterr(b.error, "%s", b.msg);
	return 0;
}

uint64_t
hammer2_io_nreads(hammer2_dev_t *hmp)
{
	return __atomic_load_n(&hmp->io_reads, __ATOMIC_RELAXED);
}

uint64_t
hammer2_io_nwrites(hammer2_dev_t *hmp)
{
	return __atomic_load_n(&hmp->io_writes, __ATOMIC_RELAXED);
}
