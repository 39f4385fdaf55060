/*
 * DIO write-back.  hammer2_io_write copies a block (or borrows it) and
 * queues it for the device's writers on the I/O pool, which write the
 * queue in offset order, a run of neighbouring blocks in one request; a
 * cached buffer of the block takes the new data at once, one being loaded
 * lays it over when the load completes (hammer2_io.c).  hammer2_io_flush
 * is the barrier that waits for every queued write and then flushes the
 * device, so whatever is written after it (the volume header) lands after
 * everything before it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include "hammer2_debug.h"
#include "hammer2_io_priv.h"
#include "hammer2_iopool.h"

/* A queued write reached the device, or failed to (iolock held). */
static void
wreq_done_locked(hammer2_wreq_t *w, int error)
{
	hammer2_dev_t *hmp = w->dio->hmp;

	if (error && hmp->wb_error == 0) {
		hmp->wb_error = error;
		free(hmp->wb_errmsg);
		hmp->wb_errmsg = strdup(hammer2_errmsg());
	}
	KKASSERT(hmp->wb_pending > 0);
	--hmp->wb_pending;
	w->done = 1;
	if (!w->attached)
		hammer2_wreq_free(w);
}

static int
wreq_cmp(const void *a, const void *b)
{
	const hammer2_wreq_t *x = *(hammer2_wreq_t *const *)a;
	const hammer2_wreq_t *y = *(hammer2_wreq_t *const *)b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
wreq_seq_cmp(const void *a, const void *b)
{
	const hammer2_wreq_t *x = *(hammer2_wreq_t *const *)a;
	const hammer2_wreq_t *y = *(hammer2_wreq_t *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Write a batch of queued writes in offset order, each run of neighbours
 * in one vectored request.  Writes may land in any order between barriers,
 * except that a later write over the same bytes lands last: a batch whose
 * writes overlap keeps the order they were queued in.
 */
static void
wq_write_batch(hammer2_dev_t *hmp, hammer2_wreq_t **w, int n)
{
	struct iovec iov[HAMMER2_IOV_MAX];
	hammer2_io_t *dios[HAMMER2_IOV_MAX];
	int i, k, error;

	qsort(w, (size_t)n, sizeof(*w), wreq_cmp);
	for (i = 1; i < n; ++i)
		if (w[i]->off < w[i - 1]->off + (hammer2_off_t)w[i - 1]->bytes)
			break;
	if (i < n)
		qsort(w, (size_t)n, sizeof(*w), wreq_seq_cmp);
	for (i = 0; i < n; i += k) {
		hammer2_off_t end = w[i]->off;

		for (k = 0; i + k < n && k < HAMMER2_IOV_MAX &&
			    w[i + k]->off == end; ++k) {
			iov[k].iov_base = (void *)w[i + k]->data;
			iov[k].iov_len = (size_t)w[i + k]->bytes;
			end += (hammer2_off_t)w[i + k]->bytes;
		}
		__atomic_add_fetch(&hmp->io_writes, 1, __ATOMIC_RELAXED);
		error = hammer2_dev_pwritev(hmp, iov, k, w[i]->off);
		pthread_mutex_lock(&hmp->iolock);
		for (int j = i; j < i + k; ++j) {
			dios[j - i] = w[j]->dio;
			wreq_done_locked(w[j], error);
		}
		pthread_mutex_unlock(&hmp->iolock);
		for (int j = 0; j < k; ++j)
			hammer2_io_putblk(&dios[j]);
	}
}

/*
 * A write in flight: the 4 KiB pages it touches, so two writers never
 * share one (a server may update a page whole).
 */
struct hammer2_wspan {
	hammer2_off_t	beg, end;
};

#define WSPAN_PAGE	4096ULL

static struct hammer2_wspan
wspan(const hammer2_wreq_t *w)
{
	struct hammer2_wspan sp;

	sp.beg = w->off & ~(WSPAN_PAGE - 1);
	sp.end = (w->off + (hammer2_off_t)w->bytes + WSPAN_PAGE - 1) &
		 ~(WSPAN_PAGE - 1);
	return sp;
}

/* Whether w overlaps a write another writer has in flight (iolock held). */
static int
wq_conflicts(hammer2_dev_t *hmp, int slot, const hammer2_wreq_t *w)
{
	struct hammer2_wspan sp = wspan(w);

	for (int s = 0; s < HAMMER2_WQ_WRITERS; ++s)
		for (int i = 0; s != slot && i < hmp->wq_nspan[s]; ++i)
			if (sp.beg < hmp->wq_span[s][i].end &&
			    hmp->wq_span[s][i].beg < sp.end)
				return 1;
	return 0;
}

/*
 * A device's writer: it drains the queue batch by batch, so the device's
 * writes go out a run at a time, not a block at a time.  A file takes one
 * writer (its writers would only take turns in the kernel); a device that
 * works on several requests at once (NBD) takes up to HAMMER2_WQ_WRITERS,
 * each with a batch of its own.  A batch stops before a write overlapping
 * one in flight, which is written after it, in order.  A writer counts as
 * in flight until it stops, so the device outlives it.
 */
static void
wq_run(hammer2_ioreq_t *req)
{
	hammer2_dev_t *hmp = ((hammer2_wqreq_t *)req)->hmp;
	int slot = ((hammer2_wqreq_t *)req)->slot;
	hammer2_wreq_t *batch[HAMMER2_WQ_MAX];
	struct hammer2_wspan span[HAMMER2_WQ_MAX];

	pthread_mutex_lock(&hmp->iolock);
	for (;;) {
		int max = HAMMER2_WQ_MAX / hmp->wq_busy, n = 0;
		hammer2_wreq_t *w;

		while ((w = hmp->wq_head) != NULL && n < max &&
		       !wq_conflicts(hmp, slot, w)) {
			if ((hmp->wq_head = w->qnext) == NULL)
				hmp->wq_tail = NULL;
			span[n] = wspan(w);
			batch[n++] = w;
		}
		if (n == 0 && hmp->wq_head) {
			/* the next write waits for the one it overlaps */
			pthread_cond_wait(&hmp->iocv, &hmp->iolock);
			continue;
		}
		if (n == 0)
			break;
		hmp->wq_count -= n;
		hmp->wq_span[slot] = span;
		hmp->wq_nspan[slot] = n;
		pthread_cond_broadcast(&hmp->iocv);	/* room in the queue */
		pthread_mutex_unlock(&hmp->iolock);
		wq_write_batch(hmp, batch, n);
		pthread_mutex_lock(&hmp->iolock);
		hmp->wq_nspan[slot] = 0;
		pthread_cond_broadcast(&hmp->iocv);
	}
	hmp->wq_slots &= ~(1u << slot);
	--hmp->wq_busy;
	pthread_mutex_unlock(&hmp->iolock);
	hammer2_io_done(hmp);
}

/*
 * Another writer for the queue, if it needs one (iolock held): the first,
 * or one more while the queue holds more than the busy ones take.
 */
static hammer2_wqreq_t *
wq_start_locked(hammer2_dev_t *hmp)
{
	hammer2_wqreq_t *wr;
	int slot;

	if (hmp->wq_busy > 0 &&
	    (hmp->wq_busy >= hammer2_dev_write_depth(hmp) ||
	     hmp->wq_count <= HAMMER2_WQ_MAX / (hmp->wq_busy + 1)))
		return NULL;
	for (slot = 0; hmp->wq_slots & (1u << slot); ++slot)
		;
	KKASSERT(slot < HAMMER2_WQ_WRITERS);
	hmp->wq_slots |= 1u << slot;
	++hmp->wq_busy;
	++hmp->io_inflight;
	wr = &hmp->wq_req[slot];
	wr->req.run = wq_run;
	wr->hmp = hmp;
	wr->slot = slot;
	return wr;
}

/*
 * Queue a block write (write-back; hammer2_io_flush waits for it).  A
 * cached buffer holding the block takes the new data at once; one being
 * loaded gets it laid over when the load completes.  Errors of the write
 * itself are reported by the next barrier.
 */
int
hammer2_io_write(hammer2_dev_t *hmp, hammer2_off_t off, const void *data,
		 int bytes)
{
	return hammer2_io_write_borrow(hmp, off, data, bytes, NULL);
}

/*
 * hammer2_io_write, borrowing data (unchanged until released) when hold
 * is given instead of copying it; the hold is released in every case.
 */
int
hammer2_io_write_borrow(hammer2_dev_t *hmp, hammer2_off_t off,
			const void *data, int bytes,
			const hammer2_iohold_t *hold)
{
	hammer2_wqreq_t *wr;
	hammer2_wreq_t *w;
	hammer2_io_t *dio;
	uint8_t *copy = NULL;
	int error;

	error = hammer2_io_range_check(hmp, off, bytes);
	if (error == 0 && hmp->readonly)
		error = hammer2_seterr(EROFS, "%s: opened read-only", hmp->path);
	w = error ? NULL : calloc(1, sizeof(*w));
	if (w && !hold && (copy = hammer2_iobuf_alloc()) == NULL) {
		free(w);
		w = NULL;
	}
	if (w == NULL) {
		if (hold)
			hold->rele(hold->arg);
		return error ? error :
		       hammer2_seterr(ENOMEM, "out of memory for a write");
	}
	if (hold) {
		w->hold = *hold;
		w->data = data;
	} else {
		memcpy(copy, data, (size_t)bytes);
		w->data = copy;
	}
	w->off = off;
	w->bytes = bytes;
	pthread_mutex_lock(&hmp->iolock);
	/*
	 * Back-pressure: a bounded queue, waited for before the write takes
	 * its place in order.  Not on a pool worker (none writes today), as
	 * the writer could be queued behind it.
	 */
	while (hmp->wq_count >= HAMMER2_WQ_MAX && !hammer2_iopool_is_worker())
		pthread_cond_wait(&hmp->iocv, &hmp->iolock);
	dio = hammer2_io_get_locked(hmp, off & ~HAMMER2_PBUFMASK64);
	if (dio == NULL) {
		pthread_mutex_unlock(&hmp->iolock);
		hammer2_wreq_free(w);
		return hammer2_seterr(ENOMEM, "out of memory for a DIO buffer");
	}
	if (dio->state == DIO_GOOD) {
		memcpy(dio->data + (off - dio->pbase), data, (size_t)bytes);
		__atomic_and_fetch(&dio->crc_good_mask,
				   ~hammer2_io_crc_mask(dio, off, bytes), __ATOMIC_RELEASE);
	} else {
		hammer2_wreq_t **pp = &dio->wpend;

		/* in order: a later write of the same bytes is laid over last */
		while (*pp != NULL)
			pp = &(*pp)->next;
		w->attached = 1;
		w->next = NULL;
		*pp = w;
	}
	w->dio = dio;
	w->seq = hmp->wq_seq++;
	w->qnext = NULL;
	++hmp->wb_pending;
	if (hmp->wq_tail)
		hmp->wq_tail->qnext = w;
	else
		hmp->wq_head = w;
	hmp->wq_tail = w;
	++hmp->wq_count;
	wr = wq_start_locked(hmp);
	pthread_mutex_unlock(&hmp->iolock);
	if (wr)
		hammer2_iopool_submit(&wr->req);
	return 0;
}

/*
 * Barrier: wait until every queued write is on the device, then flush
 * the device.  The first write error since the last barrier fails it.
 */
int
hammer2_io_flush(hammer2_dev_t *hmp)
{
	char *msg;
	int error;

	pthread_mutex_lock(&hmp->iolock);
	while (hmp->wb_pending > 0)
		pthread_cond_wait(&hmp->iocv, &hmp->iolock);
	error = hmp->wb_error;
	msg = hmp->wb_errmsg;
	hmp->wb_error = 0;
	hmp->wb_errmsg = NULL;
	pthread_mutex_unlock(&hmp->iolock);
	if (error) {
		hammer2_seterr(error, "%s", msg ? msg : strerror(error));
		free(msg);
		return error;
	}
	/* planted bug (tests only): nothing orders what follows the barrier */
	if (hammer2_planted_bug & HAMMER2_BUG_NOBARRIER)
		return 0;
	return hammer2_dev_sync(hmp);
}

