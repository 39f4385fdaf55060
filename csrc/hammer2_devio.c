/*
 * Raw device access: every byte pyh2 reads from or writes to a node goes
 * through here, so this is where test faults are injected (read and
 * write errors, corrupted or slow reads, a disconnect, ENOSPC), where
 * writes and flush barriers are recorded for the crash-consistency engine
 * and where reads are timed (the node's usual read time, by which the
 * cluster picks the node reads go to).  The bytes themselves move through
 * the device's backend (hammer2_backend.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "hammer2.h"
#include "hammer2_backend.h"

/* Deterministic per-device random stream (splitmix64). */
static uint64_t
fault_rand(hammer2_fault_t *f)
{
	uint64_t z = (f->seed += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int
fault_applies(int kind, int op)
{
	switch (kind) {
	case HAMMER2_FAULT_READ:
	case HAMMER2_FAULT_CORRUPT:
	case HAMMER2_FAULT_SLOW:
		return op == HAMMER2_DEVOP_READ;
	case HAMMER2_FAULT_WRITE:
	case HAMMER2_FAULT_ENOSPC:
		return op == HAMMER2_DEVOP_WRITE;
	case HAMMER2_FAULT_DISCONNECT:
		return 1;
	}
	return 0;
}

/*
 * Whether this I/O is hit by the device's armed fault (faultlock held).
 * A disconnect, once it happens, stays until the fault is cleared.
 */
static int
fault_hit(hammer2_fault_t *f, int op)
{
	if (!fault_applies(f->kind, op))
		return 0;
	if (f->kind == HAMMER2_FAULT_DISCONNECT && f->injected)
		return 1;
	if (f->seen++ < f->after)
		return 0;
	if (f->limit && f->injected >= f->limit)
		return 0;
	if (f->ppm < 1000000 && fault_rand(f) % 1000000 >= f->ppm)
		return 0;
	++f->injected;
	return 1;
}

static int
fault_error(int kind)
{
	switch (kind) {
	case HAMMER2_FAULT_ENOSPC:
		return ENOSPC;
	case HAMMER2_FAULT_DISCONNECT:
		return ENOTCONN;
	}
	return EIO;
}

/*
 * Check the armed fault for an I/O: 0, an errno, or -1 to corrupt.  A
 * slow read is held here, outside the lock, and then goes on.
 */
static int
fault_check(hammer2_dev_t *hmp, int op)
{
	uint32_t delay_ms = 0;
	int kind, rc = 0;

	if (__atomic_load_n(&hmp->fault.kind, __ATOMIC_ACQUIRE) == 0)
		return 0;
	pthread_mutex_lock(&hmp->faultlock);
	kind = hmp->fault.kind;
	if (fault_hit(&hmp->fault, op)) {
		if (kind == HAMMER2_FAULT_SLOW)
			delay_ms = hmp->fault.delay_ms;
		else
			rc = kind == HAMMER2_FAULT_CORRUPT ? -1 : fault_error(kind);
	}
	pthread_mutex_unlock(&hmp->faultlock);
	if (delay_ms) {
		struct timespec ts = { delay_ms / 1000,
				       (long)(delay_ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	return rc;
}

/*
 * A read served in ns: the node's usual read time (a moving average of
 * 1/8 weight, the first read taken as is).  Only a successful read counts:
 * a failed one says nothing of the node's speed.
 */
static void
read_timed(hammer2_dev_t *hmp, int64_t ns)
{
	uint64_t lat = __atomic_load_n(&hmp->node.lat_ns, __ATOMIC_RELAXED);

	lat = lat ? lat - lat / 8 + (uint64_t)ns / 8 : (uint64_t)ns;
	__atomic_store_n(&hmp->node.lat_ns, lat, __ATOMIC_RELAXED);
}

/* Log a write (of volume vol, at off in it) or a barrier (vol -1). */
static void
record(hammer2_dev_t *hmp, int op, int vol, hammer2_off_t off,
       const void *data, size_t bytes)
{
	hammer2_devrec_t *r = &hmp->rec;
	hammer2_devrec_ent_t *e;

	if (!__atomic_load_n(&r->on, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&hmp->faultlock);
	if (r->count == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		hammer2_devrec_ent_t *n = realloc(r->ents, cap * sizeof(*n));

		if (n == NULL) {
			r->overflow = 1;
			goto out;
		}
		r->ents = n;
		r->cap = cap;
	}
	e = &r->ents[r->count];
	e->op = op;
	e->vol = vol;
	e->off = off;
	e->bytes = bytes;
	e->data = NULL;
	if (bytes && (e->data = malloc(bytes)) == NULL) {
		r->overflow = 1;
		goto out;
	}
	if (bytes)
		memcpy(e->data, data, bytes);
	++r->count;
out:
	pthread_mutex_unlock(&hmp->faultlock);
}

/*
 * The volume holding logical offset off: the last one starting at or
 * below it (the last volume takes everything past its start, so reads
 * past a truncated image fail in its backend, naming it).
 */
hammer2_volume_t *
hammer2_volume_at(hammer2_dev_t *hmp, hammer2_off_t off)
{
	int lo = 0, hi = hmp->nvols - 1;

	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;

		if (hmp->vols[mid].offset <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	return &hmp->vols[lo];
}

/* Bytes from off to the end of its volume's logical range. */
static hammer2_off_t
volume_room(hammer2_dev_t *hmp, const hammer2_volume_t *v, hammer2_off_t off)
{
	if (v == &hmp->vols[hmp->nvols - 1])
		return ~(hammer2_off_t)0 - off;
	return v[1].offset - off;
}

/* One volume's part of a range, in one request where the backend can. */
static int
volume_rwv(hammer2_volume_t *v, int write, const struct iovec *iov,
	   int iovcnt, hammer2_off_t off)
{
	hammer2_backend_t *be = v->be;
	int error = 0;

	if (iovcnt > 1 && write && be->ops->pwritev)
		return be->ops->pwritev(be, iov, iovcnt, off);
	if (iovcnt > 1 && !write && be->ops->preadv)
		return be->ops->preadv(be, iov, iovcnt, off);
	for (int i = 0; i < iovcnt && error == 0; ++i) {
		error = write ? be->ops->pwrite(be, iov[i].iov_base,
						iov[i].iov_len, off) :
				be->ops->pread(be, iov[i].iov_base,
					       iov[i].iov_len, off);
		off += iov[i].iov_len;
	}
	return error;
}

/*
 * Move one logical range to or from iovcnt buffers, split where it
 * crosses into the next volume; a write that reached the device is
 * logged piece by piece.
 */
static int
dev_rwv(hammer2_dev_t *hmp, int write, const struct iovec *iov, int iovcnt,
	hammer2_off_t off)
{
	struct iovec left[HAMMER2_IOV_MAX], *cur = left;
	int error = 0, n = iovcnt;

	if (iovcnt > HAMMER2_IOV_MAX)
		return hammer2_seterr(EINVAL, "%s: %s of %d pieces", hmp->path,
				      write ? "write" : "read", iovcnt);
	memcpy(left, iov, (size_t)iovcnt * sizeof(*iov));
	while (n > 0 && error == 0) {
		hammer2_volume_t *v = hammer2_volume_at(hmp, off);
		hammer2_off_t room = volume_room(hmp, v, off);
		hammer2_off_t voff = off - v->offset;
		struct iovec part[HAMMER2_IOV_MAX];
		size_t take = 0;
		int k;

		for (k = 0; k < n && take < room; ++k) {
			part[k] = cur[k];
			if (part[k].iov_len > room - take)
				part[k].iov_len = (size_t)(room - take);
			take += part[k].iov_len;
		}
		error = volume_rwv(v, write, part, k, voff);
		for (int i = 0; write && error == 0 && i < k; ++i) {
			record(hmp, HAMMER2_DEVOP_WRITE, (int)(v - hmp->vols),
			       voff, part[i].iov_base, part[i].iov_len);
			voff += part[i].iov_len;
		}
		off += take;
		cur = hammer2_iov_advance(cur, &n, take);
	}
	return error;
}

/*
 * Read one logical range into iovcnt buffers (a single request per
 * volume where the backend can); faults and corruption apply to it as to
 * one read.
 */
int
hammer2_dev_preadv(hammer2_dev_t *hmp, const struct iovec *iov, int iovcnt,
		   hammer2_off_t off)
{
	int64_t start_ns = hammer2_mono_ns();
	int error, rc = fault_check(hmp, HAMMER2_DEVOP_READ);

	if (rc > 0)
		return hammer2_seterr(rc, "%s: read error at 0x%llx: %s "
				      "(injected)", hmp->path,
				      (unsigned long long)off, strerror(rc));
	if ((error = dev_rwv(hmp, 0, iov, iovcnt, off)))
		return error;
	read_timed(hmp, hammer2_mono_ns() - start_ns);
	if (rc < 0) {
		/* damage every 64th byte, so any block read from here fails */
		for (int i = 0; i < iovcnt; ++i)
			for (size_t k = 0; k < iov[i].iov_len; k += 64)
				((uint8_t *)iov[i].iov_base)[k] ^= 0x5a;
	}
	return 0;
}

int
hammer2_dev_pread(hammer2_dev_t *hmp, void *buf, size_t bytes,
		  hammer2_off_t off)
{
	struct iovec iov = { buf, bytes };

	return hammer2_dev_preadv(hmp, &iov, 1, off);
}

/*
 * Write iovcnt buffers to one logical range.  An armed write fault sees
 * the buffers one by one, as the blocks they are: each is written or
 * fails on its own, and the first failure is returned.
 */
int
hammer2_dev_pwritev(hammer2_dev_t *hmp, const struct iovec *iov, int iovcnt,
		    hammer2_off_t off)
{
	char first_msg[256];
	int error = 0, rc;

	if (hmp->readonly)
		return hammer2_seterr(EROFS, "%s: opened read-only", hmp->path);
	if (iovcnt > 1 &&
	    fault_applies(__atomic_load_n(&hmp->fault.kind, __ATOMIC_ACQUIRE),
			  HAMMER2_DEVOP_WRITE)) {
		for (int i = 0; i < iovcnt; ++i) {
			rc = hammer2_dev_pwritev(hmp, &iov[i], 1, off);
			if (rc && error == 0) {
				error = rc;
				snprintf(first_msg, sizeof(first_msg), "%s",
					 hammer2_errmsg());
			}
			off += iov[i].iov_len;
		}
		return error ? hammer2_seterr(error, "%s", first_msg) : 0;
	}
	rc = fault_check(hmp, HAMMER2_DEVOP_WRITE);
	if (rc > 0)
		return hammer2_seterr(rc, "%s: write error at 0x%llx: %s "
				      "(injected)", hmp->path,
				      (unsigned long long)off, strerror(rc));
	return dev_rwv(hmp, 1, iov, iovcnt, off);
}

/* Write requests the device takes at once: its slowest volume's. */
int
hammer2_dev_write_depth(hammer2_dev_t *hmp)
{
	int depth = HAMMER2_WQ_WRITERS;

	for (int i = 0; i < hmp->nvols; ++i) {
		int d = hmp->vols[i].be->ops->write_depth;

		depth = d < 1 ? 1 : d < depth ? d : depth;
	}
	return depth;
}

int
hammer2_dev_sync(hammer2_dev_t *hmp)
{
	int error = 0, rc = fault_check(hmp, HAMMER2_DEVOP_SYNC);

	if (rc > 0)
		return hammer2_seterr(rc, "%s: sync failed: %s (injected)",
				      hmp->path, strerror(rc));
	record(hmp, HAMMER2_DEVOP_SYNC, -1, 0, NULL, 0);
	for (int i = 0; i < hmp->nvols && error == 0; ++i)
		error = hmp->vols[i].be->ops->flush(hmp->vols[i].be);
	return error;
}

/*
 * Arm fault (NULL: disarm).  Returns how many times the fault it replaces
 * fired, read under the same lock, so an I/O racing the call is counted by
 * exactly one of the two faults.
 */
uint64_t
hammer2_dev_fault(hammer2_dev_t *hmp, const hammer2_fault_t *fault)
{
	uint64_t injected;

	pthread_mutex_lock(&hmp->faultlock);
	injected = hmp->fault.injected;
	if (fault) {
		hmp->fault = *fault;
		hmp->fault.seen = 0;
		hmp->fault.injected = 0;
	} else {
		memset(&hmp->fault, 0, sizeof(hmp->fault));
	}
	__atomic_store_n(&hmp->fault.kind, fault ? fault->kind : 0,
			 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&hmp->faultlock);
	return injected;
}

uint64_t
hammer2_dev_faults_injected(hammer2_dev_t *hmp)
{
	uint64_t n;

	pthread_mutex_lock(&hmp->faultlock);
	n = hmp->fault.injected;
	pthread_mutex_unlock(&hmp->faultlock);
	return n;
}

void
hammer2_dev_record(hammer2_dev_t *hmp, int on)
{
	__atomic_store_n(&hmp->rec.on, on, __ATOMIC_RELEASE);
}

/*
 * Hand the recorded writes and barriers to the caller (who frees each
 * entry's data and the array) and start a new log.  *overflowp: entries
 * were lost for lack of memory, so the log is incomplete.
 */
hammer2_devrec_ent_t *
hammer2_dev_record_take(hammer2_dev_t *hmp, size_t *countp, int *overflowp)
{
	hammer2_devrec_ent_t *ents;

	pthread_mutex_lock(&hmp->faultlock);
	ents = hmp->rec.ents;
	*countp = hmp->rec.count;
	*overflowp = hmp->rec.overflow;
	hmp->rec.ents = NULL;
	hmp->rec.count = hmp->rec.cap = 0;
	hmp->rec.overflow = 0;
	pthread_mutex_unlock(&hmp->faultlock);
	return ents;
}

void
hammer2_devrec_free(hammer2_devrec_ent_t *ents, size_t count)
{
	for (size_t i = 0; i < count; ++i)
		free(ents[i].data);
	free(ents);
}
