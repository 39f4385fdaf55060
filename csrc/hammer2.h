/*
 * pyh2: in-core structures of the userspace HAMMER2 core.
 *
 * Layers, bottom up:
 *   hammer2_io.c      DIO: refcounted 64 KiB device buffers, callback I/O
 *   hammer2_volume.c  device open, volume header selection
 *   hammer2_chain.c   one node's block tree: chains, lookup/next
 *   hammer2_cluster.c N chains (one per node) presented as one
 *   hammer2_inode.c   PFS, inode, directory and file reads over clusters
 *   hammer2_fsck.c    whole-volume blockref walk with check verification
 *
 * Errors are positive errno values; the thread's last error message
 * (hammer2_errmsg()) names the object and the media offset involved.
 */
#ifndef HAMMER2_H_
#define HAMMER2_H_

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include "hammer2_assert.h"
#include "hammer2_disk.h"
#include "hammer2_iopool.h"

typedef struct hammer2_dev hammer2_dev_t;
typedef struct hammer2_io hammer2_io_t;
typedef struct hammer2_iocb hammer2_iocb_t;
typedef struct hammer2_chain hammer2_chain_t;
typedef struct hammer2_cluster hammer2_cluster_t;
typedef struct hammer2_pfs hammer2_pfs_t;

/* ---------------------------------------------------------------- errors */

int hammer2_seterr(int error, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int hammer2_preerr(int error, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *hammer2_errmsg(void);

/* Hold a process-wide lock across fork (hammer2_fork.c; up to 8 locks). */
void hammer2_fork_guard(pthread_mutex_t *lock);

/* ------------------------------------------------------ checks, hashing */

uint32_t hammer2_icrc32(const void *buf, size_t size);
hammer2_key_t hammer2_dirhash(const uint8_t *name, size_t len);
const char *hammer2_check_name(int check);
const char *hammer2_comp_name(int comp);
const char *hammer2_bref_type_name(int type);
int hammer2_check_verify(const hammer2_blockref_t *bref, const void *data,
			 size_t bytes);
void hammer2_check_set(hammer2_blockref_t *bref, int check, const void *data,
		       size_t bytes);

static inline int
hammer2_all_zero(const void *buf, size_t n)
{
	const uint8_t *p = buf;

	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/*
 * The next run of 64 KiB blocks in buf (len bytes) at or after *posp that
 * are not all zero: its start in *posp, its length returned (0: none).
 * Copies write these and leave the rest as holes.
 */
static inline size_t
hammer2_data_run(const uint8_t *buf, size_t len, size_t *posp)
{
	size_t pos = *posp, end, n;

	for (; pos < len; pos += n) {
		n = len - pos < HAMMER2_PBUFSIZE ? len - pos : HAMMER2_PBUFSIZE;
		if (!hammer2_all_zero(buf + pos, n))
			break;
	}
	for (end = pos; end < len; end += n) {
		n = len - end < HAMMER2_PBUFSIZE ? len - end : HAMMER2_PBUFSIZE;
		if (hammer2_all_zero(buf + end, n))
			break;
	}
	*posp = pos;
	return end - pos;
}

/*
 * Encoding of data blocks for flush (hammer2_encode.c): a batch of jobs
 * is encoded side by side by a small pool of threads and the caller.
 */
typedef struct hammer2_encjob {
	const uint8_t	*src;		/* the logical block */
	size_t		len;
	int		comp;		/* asked; on return: used */
	int		level;
	int		check;
	int		zero_holes;	/* an all-zero block becomes a hole */
	uint8_t		*dst;		/* HAMMER2_PBUFSIZE bytes */
	int		zero;		/* out: all zero, a hole */
	int		cached;		/* in: already encoded, pass over it */
	size_t		psize;		/* out: media bytes in dst */
	hammer2_blockref_t bref;	/* out: .check */
} hammer2_encjob_t;

int hammer2_data_encode(int comp, int level, const uint8_t *src, size_t len,
			uint8_t *dst, size_t *psize);
void hammer2_encode_batch(hammer2_encjob_t *jobs, int n);
int hammer2_encode_set_parallel(int on);

/* Decode one compressed logical block into dst (capacity dstsize). */
int hammer2_decompress(int comp, const void *src, size_t srcsize,
		       void *dst, size_t dstsize, size_t *outsize);

/* ------------------------------------------------------------------ DIO */

#define HAMMER2_DIO_HASH	1024
#define HAMMER2_DIO_CACHE_MAX	2048	/* idle buffers kept: 128 MiB */

enum hammer2_io_state { DIO_EMPTY, DIO_INPROG, DIO_GOOD, DIO_ERROR };

struct hammer2_io {
	hammer2_io_t		*hnext;		/* hash chain */
	hammer2_io_t		*lru_prev;	/* idle list, refs == 0 only */
	hammer2_io_t		*lru_next;
	hammer2_dev_t		*hmp;
	hammer2_off_t		pbase;		/* 64 KiB aligned */
	int			refs;
	enum hammer2_io_state	state;
	int			error;
	uint64_t		crc_good_mask;	/* 1 KiB pieces already verified */
	int			invalid;	/* failed a check: do not cache */
	uint8_t			*data;
	hammer2_iocb_t		*waiters;	/* async loads of this buffer */
	struct hammer2_wreq	*wpend;		/* writes to lay over a load */
};

/*
 * Asynchronous load: the callback runs once the DIO backing
 * [off, off + bytes) is loaded or has failed.  cb->dio holds a reference
 * that the callback must release with hammer2_io_putblk().  Without
 * HAMMER2_IOCB_ASYNC the callback runs in the caller's thread before
 * hammer2_io_load_async returns; with it, a worker completes the load and
 * runs the callback (the caller's thread does, when the buffer is cached).
 */
#define HAMMER2_IOCB_ASYNC	0x0001

struct hammer2_iocb {
	void		(*callback)(hammer2_iocb_t *);
	hammer2_io_t	*dio;
	hammer2_off_t	off;
	int		bytes;
	int		error;
	void		*arg;
	int		flags;		/* HAMMER2_IOCB_* */
	hammer2_iocb_t	*next;		/* on the buffer's waiter list */
};

int hammer2_io_bread(hammer2_dev_t *hmp, hammer2_off_t off, int bytes,
		     hammer2_io_t **diop);
void hammer2_io_load_async(hammer2_dev_t *hmp, hammer2_iocb_t *iocb);
void hammer2_io_putblk(hammer2_io_t **diop);
void *hammer2_io_data(hammer2_io_t *dio, hammer2_off_t off);
int hammer2_io_write(hammer2_dev_t *hmp, hammer2_off_t off, const void *data,
		     int bytes);
/* A buffer a queued write borrows instead of copying, released once done. */
typedef struct hammer2_iohold {
	void	(*rele)(void *arg);
	void	*arg;
} hammer2_iohold_t;
int hammer2_io_write_borrow(hammer2_dev_t *hmp, hammer2_off_t off,
			    const void *data, int bytes,
			    const hammer2_iohold_t *hold);
int hammer2_io_verify(hammer2_io_t *dio, hammer2_off_t off, int bytes,
		      const hammer2_blockref_t *bref);
void hammer2_io_set_verified(hammer2_io_t *dio, hammer2_off_t off, int bytes);
int hammer2_io_flush(hammer2_dev_t *hmp);
void *hammer2_iobuf_alloc(void);
void hammer2_iobuf_free(void *buf);
void hammer2_io_purge(hammer2_dev_t *hmp);
void hammer2_io_prefetch(hammer2_dev_t *hmp, hammer2_off_t pbase, int n);
/* Neighbouring buffers to read ahead, gathered into one hammer2_io_prefetch. */
typedef struct hammer2_io_run {
	hammer2_dev_t	*hmp;
	hammer2_off_t	base;
	int		n;		/* buffers from base; 0: none yet */
} hammer2_io_run_t;
void hammer2_io_run_add(hammer2_io_run_t *r, hammer2_dev_t *hmp,
			hammer2_off_t pbase);
void hammer2_io_run_flush(hammer2_io_run_t *r);
int hammer2_io_cached(hammer2_dev_t *hmp, hammer2_off_t pbase);
int hammer2_io_peek(hammer2_dev_t *hmp, hammer2_off_t off, void *buf,
		    int bytes);
int hammer2_io_direct(hammer2_dev_t *hmp, hammer2_off_t off, void *buf,
		      size_t bytes, void (*done)(void *arg, int error),
		      void *arg);
uint64_t hammer2_io_nreads(hammer2_dev_t *hmp);
uint64_t hammer2_io_nwrites(hammer2_dev_t *hmp);
int hammer2_io_readmany(hammer2_dev_t *hmp, const hammer2_off_t *offs,
			size_t count, int qdepth);
void hammer2_io_init(hammer2_dev_t *hmp);
void hammer2_io_settle(hammer2_dev_t *hmp);
void hammer2_io_cleanup(hammer2_dev_t *hmp);

/* --------------------------------------------------------------- device */

typedef struct hammer2_volhdr_info {
	int		present;	/* lies inside the device */
	int		valid;
	char		error[96];
	hammer2_tid_t	mirror_tid;
	hammer2_tid_t	freemap_tid;
	hammer2_off_t	volu_size;
	hammer2_off_t	total_size;
	hammer2_off_t	allocator_size;
	hammer2_off_t	allocator_free;
	uint32_t	version;
} hammer2_volhdr_info_t;

/* Test faults a device can be armed with (hammer2_devio.c). */
#define HAMMER2_FAULT_READ		1	/* reads fail EIO */
#define HAMMER2_FAULT_WRITE		2	/* writes fail EIO */
#define HAMMER2_FAULT_CORRUPT		3	/* reads return damaged data */
#define HAMMER2_FAULT_DISCONNECT	4	/* all I/O fails ENOTCONN, for good */
#define HAMMER2_FAULT_ENOSPC		5	/* writes fail ENOSPC */
#define HAMMER2_FAULT_SLOW		6	/* reads take delay_ms longer */

typedef struct hammer2_fault {
	int		kind;		/* HAMMER2_FAULT_*, 0: none */
	uint64_t	after;		/* matching I/Os let through first */
	uint32_t	ppm;		/* then hit with this chance per million */
	uint64_t	limit;		/* faults to inject, 0: no limit */
	uint64_t	seed;
	uint32_t	delay_ms;	/* HAMMER2_FAULT_SLOW */
	uint64_t	seen;
	uint64_t	injected;
} hammer2_fault_t;

#define HAMMER2_DEVOP_READ	0
#define HAMMER2_DEVOP_WRITE	1
#define HAMMER2_DEVOP_SYNC	2	/* a flush barrier */

typedef struct hammer2_devrec_ent {
	int		op;		/* HAMMER2_DEVOP_WRITE or _SYNC */
	int		vol;		/* a write's volume */
	hammer2_off_t	off;		/* a write's offset in its volume */
	size_t		bytes;
	uint8_t		*data;
} hammer2_devrec_ent_t;

typedef struct hammer2_devrec {
	int			on;
	int			overflow;
	hammer2_devrec_ent_t	*ents;
	size_t			count, cap;
} hammer2_devrec_t;

/*
 * A device's standing as a node of a cluster (hammer2_quorum.c): live,
 * stale (out of sync with the quorum's transaction) or failed (a write
 * failed: no more flushes until resynced).  Guarded by faultlock.
 */
#define HAMMER2_NODE_LIVE	0
#define HAMMER2_NODE_STALE	1
#define HAMMER2_NODE_FAILED	2

typedef struct hammer2_node {
	int		state;		/* HAMMER2_NODE_* */
	int		error;		/* errno behind stale/failed */
	uint64_t	read_errors;	/* elements this node failed to serve */
	uint64_t	healed;		/* ... rewritten from another node since */
	uint64_t	lat_ns;		/* its device reads' usual time (a moving
					 * average, kept by hammer2_devio.c) */
	struct hammer2_heal *heals;	/* to rewrite at the next flush */
	int		nheals;
	int		resyncing;	/* a resync in passes holds its copy */
	uint64_t	encodes_copied;	/* data blocks another node encoded */
	char		why[192];
} hammer2_node_t;

/*
 * One volume of a filesystem: a device holding the logical range
 * [offset, offset + size).  A multi-volume filesystem (volume version 2)
 * lays its volumes end to end as the root volume's volu_loff[] says;
 * only the root volume (id 0) holds the live volume headers.
 */
typedef struct hammer2_volume {
	struct hammer2_backend	*be;		/* hammer2_backend.h */
	char			*path;
	hammer2_off_t		offset;		/* logical start: volu_loff[id] */
	hammer2_off_t		size;		/* its header's volu_size */
	hammer2_off_t		devsize;	/* bytes the device holds */
} hammer2_volume_t;

/* One of a device's writers, on the I/O pool (hammer2_io.c). */
typedef struct hammer2_wqreq {
	hammer2_ioreq_t		req;
	hammer2_dev_t		*hmp;
	int			slot;
} hammer2_wqreq_t;

struct hammer2_dev {
	hammer2_volume_t	vols[HAMMER2_MAX_VOLUMES];
	int			nvols;
	int			readonly;
	char			*path;		/* the volumes' paths joined by ':' */
	hammer2_off_t		size;		/* logical bytes readable */
	hammer2_off_t		total_size;	/* logical bytes of the filesystem */
	int			volhdrno;	/* header copy in use */
	hammer2_volhdr_info_t	vh[HAMMER2_NUM_VOLHDRS];
	hammer2_volume_data_t	*voldata;	/* copy of the best header */
	hammer2_chain_t		*vchain;	/* VOLUME pseudo-chain */
	hammer2_chain_t		*fchain;	/* FREEMAP pseudo-chain */
	/*
	 * Transactions: readers share, a writer (modifications through the
	 * flush that commits them) is exclusive.  mtid is the tid the next
	 * flush commits, stamped on everything modified meanwhile.
	 */
	pthread_rwlock_t	translock;
	int			trans_waiting;	/* threads blocked on it */
	uint64_t		trans_begun;	/* transactions so far */
	hammer2_tid_t		mtid;
	int			flush_error;	/* a flush failed: no more */
	uint64_t		dirty_bytes;	/* the next flush allocates */
	hammer2_tid_t		room_tid;	/* room was counted at this commit */
	uint64_t		room;		/* bytes in free 64 KiB runs */
	int			nvolhdrs;	/* header copies the device holds */
	struct hammer2_freemap	*freemap;	/* allocator state, when writing */
	char			*warnings;	/* newline separated */
	pthread_mutex_t		iolock;		/* DIO hash + idle list */
	pthread_cond_t		iocv;
	hammer2_io_t		*iohash[HAMMER2_DIO_HASH];
	hammer2_io_t		*lru_head;
	hammer2_io_t		*lru_tail;
	int			lru_count;
	int			io_inflight;	/* queued reads, and the writer */
	uint64_t		io_reads;	/* buffer loads from the device */
	uint64_t		io_writes;	/* write requests to the device */
	int			wb_pending;	/* writes not yet on the device */
#define HAMMER2_WQ_MAX		256	/* queued writes, at most */
#define HAMMER2_WQ_WRITERS	4	/* a device's writers, at most */
	struct hammer2_wreq	*wq_head;	/* writes queued for the writers */
	struct hammer2_wreq	*wq_tail;
	int			wq_count;
	int			wq_busy;	/* writers draining them */
	unsigned		wq_slots;	/* which of wq_req run */
	uint64_t		wq_seq;
	hammer2_wqreq_t		wq_req[HAMMER2_WQ_WRITERS];
	const struct hammer2_wspan *wq_span[HAMMER2_WQ_WRITERS]; /* in flight */
	int			wq_nspan[HAMMER2_WQ_WRITERS];
	int			wb_error;	/* first failed one, for the barrier */
	char			*wb_errmsg;
	uint8_t			*encbuf;	/* flush: a data block encoded */
	pthread_mutex_t		faultlock;	/* fault and rec */
	hammer2_fault_t		fault;
	hammer2_devrec_t	rec;
	hammer2_node_t		node;		/* cluster membership */
};

#define HAMMER2_OPEN_RDWR	0x0001

int hammer2_dev_open(const char *const *paths, int npaths, int flags,
		     hammer2_dev_t **hmpp);
hammer2_volume_t *hammer2_volume_at(hammer2_dev_t *hmp, hammer2_off_t off);
void hammer2_trans_begin(hammer2_dev_t *hmp, int write);
int hammer2_dev_pread(hammer2_dev_t *hmp, void *buf, size_t bytes,
		      hammer2_off_t off);
struct iovec;
#define HAMMER2_IOV_MAX	64	/* segments of one vectored transfer */
int hammer2_dev_preadv(hammer2_dev_t *hmp, const struct iovec *iov,
		       int iovcnt, hammer2_off_t off);
int hammer2_dev_pwritev(hammer2_dev_t *hmp, const struct iovec *iov,
			int iovcnt, hammer2_off_t off);
int hammer2_dev_sync(hammer2_dev_t *hmp);
int hammer2_dev_write_depth(hammer2_dev_t *hmp);
uint64_t hammer2_dev_fault(hammer2_dev_t *hmp, const hammer2_fault_t *fault);
uint64_t hammer2_dev_faults_injected(hammer2_dev_t *hmp);
void hammer2_dev_record(hammer2_dev_t *hmp, int on);
hammer2_devrec_ent_t *hammer2_dev_record_take(hammer2_dev_t *hmp,
					      size_t *countp, int *overflowp);
void hammer2_devrec_free(hammer2_devrec_ent_t *ents, size_t count);
void hammer2_trans_end(hammer2_dev_t *hmp);
int hammer2_trans_writing(hammer2_dev_t *hmp);
int hammer2_flush(hammer2_dev_t *hmp);
int hammer2_flush_ahead(hammer2_dev_t *hmp, hammer2_chain_t **chains, int n);
int hammer2_flush_fits(hammer2_dev_t *hmp);
int hammer2_volhdr_write(hammer2_dev_t *hmp, int zone);

typedef struct hammer2_newfs {
	const char		*label;		/* first PFS, default "DATA" */
	int			nvolhdrs;	/* header copies, 0: all that fit */
	int			comp;		/* HAMMER2_COMP_* (with level) */
	int			check;		/* HAMMER2_CHECK_* */
	int			nmasters;	/* cluster nodes sharing clid */
	const hammer2_uuid_t	*clid;		/* NULL: random */
	hammer2_off_t		auxsize;	/* aux area, 0: nominal */
} hammer2_newfs_t;

int hammer2_newfs(const char *const *paths, const hammer2_off_t *sizes,
		  int npaths, const hammer2_newfs_t *opts);
void hammer2_dev_close(hammer2_dev_t *hmp);
const char *hammer2_volhdr_verify(const hammer2_volume_data_t *vd);
void hammer2_volhdr_crc(hammer2_volume_data_t *vd);
int hammer2_volset_open(hammer2_dev_t *hmp, const char *const *paths,
			int npaths);
int hammer2_volset_verify(hammer2_dev_t *hmp);
void hammer2_volset_close(hammer2_dev_t *hmp);
int hammer2_volset_grow_last(hammer2_dev_t *hmp, hammer2_off_t size);
int hammer2_volset_header_copy(hammer2_dev_t *hmp, int id, int zone,
			       hammer2_volume_data_t *vd, const char **why);
int hammer2_volhdr_read(hammer2_dev_t *hmp, int zone,
			hammer2_volume_data_t *vd, hammer2_volhdr_info_t *info);
hammer2_off_t hammer2_zone_offset(int zone);

/* ---------------------------------------------------------------- chain */

#define HAMMER2_CHAIN_DEPTH_MAX	64	/* bounds hostile or looping trees */

#define HAMMER2_CHAIN_LOADED	0x0001	/* data resolved and verified */
#define HAMMER2_CHAIN_EMBEDDED	0x0002	/* data points into the dev header */
#define HAMMER2_CHAIN_MODIFIED	0x0004	/* private data awaiting flush */
#define HAMMER2_CHAIN_DELETED	0x0008	/* removed from its parent */
#define HAMMER2_CHAIN_OWNED	0x0010	/* data is a private buffer */

#define HAMMER2_LOOKUP_NODATA	0x0001	/* leaf data not needed */
#define HAMMER2_LOOKUP_SHARED	0x0002	/* lock results shared */
#define HAMMER2_LOOKUP_FOCUS	0x0004	/* lookup_init: one node, for reads */

#define HAMMER2_RESOLVE_SHARED	0x0001

struct hammer2_chain {
	hammer2_blockref_t	bref;
	hammer2_dev_t		*hmp;
	hammer2_chain_t		*parent;	/* referenced */
	hammer2_io_t		*dio;
	hammer2_media_data_t	*data;
	struct hammer2_dbuf	*dbuf;		/* data shared with other nodes' */
	uint32_t		bytes;		/* physical size */
	int			depth;
	int			refs;		/* atomic */
	int			flags;
	int			error;
	int			cache_index;	/* blockref scan hint */
	uint32_t		dirty_bytes;	/* counted in hmp's, while MODIFIED */
	pthread_rwlock_t	lock;
	const void		*lock_owner;	/* exclusive holder's token */
	int			lock_depth;	/* its recursion count */
	pthread_mutex_t		dlock;		/* serializes data loading */
	/*
	 * Live children, sorted by key: every chain instantiated under this
	 * one, so an element has one chain at a time and modifications are
	 * seen by every holder.  Each child references this parent.
	 */
	pthread_mutex_t		clock;
	hammer2_chain_t		**children;
	int			nchildren;
	int			maxchildren;
};

hammer2_chain_t *hammer2_chain_alloc(hammer2_dev_t *hmp,
				     const hammer2_blockref_t *bref);
void hammer2_chain_ref(hammer2_chain_t *chain);
void hammer2_chain_drop(hammer2_chain_t *chain);
void hammer2_chain_lock(hammer2_chain_t *chain, int how);
void hammer2_chain_unlock(hammer2_chain_t *chain);
int hammer2_chain_load_data(hammer2_chain_t *chain);
hammer2_blockref_t *hammer2_chain_base(hammer2_chain_t *chain, int *countp);
hammer2_chain_t *hammer2_chain_lookup(hammer2_chain_t **parentp,
				      hammer2_key_t *key_nextp,
				      hammer2_key_t key_beg,
				      hammer2_key_t key_end,
				      int *errorp, int flags);
hammer2_chain_t *hammer2_chain_next(hammer2_chain_t **parentp,
				    hammer2_chain_t *chain,
				    hammer2_key_t *key_nextp,
				    hammer2_key_t key_beg,
				    hammer2_key_t key_end,
				    int *errorp, int flags);
void hammer2_chain_describe(const hammer2_chain_t *chain, char *buf,
			    size_t size);
hammer2_key_t hammer2_bref_key_end(const hammer2_blockref_t *bref);
hammer2_chain_t *hammer2_chain_get(hammer2_chain_t *parent,
				   const hammer2_blockref_t *bref, int *errorp);

/* Write side (callers hold the device's transaction lock exclusively). */
int hammer2_chain_modify(hammer2_chain_t *chain, hammer2_tid_t mtid);
int hammer2_chain_create(hammer2_chain_t **parentp, hammer2_chain_t **chainp,
			 hammer2_key_t key, int keybits, int type,
			 size_t bytes, hammer2_tid_t mtid);
int hammer2_chain_delete(hammer2_chain_t *chain, hammer2_tid_t mtid);
void hammer2_chain_drop_empty(hammer2_chain_t *chain);
int hammer2_chain_rename(hammer2_chain_t **parentp, hammer2_chain_t *chain,
			 hammer2_key_t key, hammer2_tid_t mtid);
int hammer2_chain_resize(hammer2_chain_t *chain, size_t bytes,
			 hammer2_tid_t mtid);
int hammer2_chain_base_update(hammer2_chain_t *parent,
			      const hammer2_blockref_t *bref);
void hammer2_chain_clear_modified(hammer2_chain_t *chain);
void hammer2_chain_release_subtree(hammer2_chain_t *chain);

/*
 * A modified DATA block's logical data, shared by its chains on the
 * nodes of a cluster (they hold the same block), with its encoding once
 * the first node's flush made it (hammer2_dbuf.c).
 */
void hammer2_chain_data_free(hammer2_chain_t *chain);
int hammer2_chain_data_share(hammer2_chain_t *chain, hammer2_chain_t *from);
int hammer2_chain_data_private(hammer2_chain_t *chain);
enum { HAMMER2_ENC_HERE, HAMMER2_ENC_CLAIMED, HAMMER2_ENC_COPIED,
       HAMMER2_ENC_WAIT };
int hammer2_chain_encode_claim(hammer2_chain_t *chain, hammer2_encjob_t *j);
void hammer2_chain_encoded_keep(hammer2_chain_t *chain,
				const hammer2_encjob_t *j);
void hammer2_chain_encoded_wait(hammer2_chain_t *chain, hammer2_encjob_t *j);
int hammer2_chain_media_hold(hammer2_chain_t *chain, const void *media,
			     hammer2_iohold_t *hold);
int hammer2_chain_encoded_preset(hammer2_chain_t *chain,
				 const hammer2_chain_t *from);

/* -------------------------------------------------------------- cluster */

#define HAMMER2_MAXCLUSTER	8

#define HAMMER2_CITEM_INVALID	0x0001	/* no matching chain on this node */
#define HAMMER2_CITEM_FEMOD	0x0002	/* participates in modifications */

typedef struct hammer2_cluster_item {
	hammer2_chain_t	*chain;
	int		error;
	uint32_t	flags;
	hammer2_dev_t	*hmp;		/* the node, when a read error left no chain */
} hammer2_cluster_item_t;

/*
 * The cluster holds one node's chains only (a read through the quickest
 * live node, hammer2_cluster_lookup_init): never modified.
 */
#define HAMMER2_CLUSTER_PARTIAL	0x0001

struct hammer2_cluster {
	int			refs;
	int			flags;		/* HAMMER2_CLUSTER_* */
	int			nchains;
	int			error;
	int			focus_index;
	hammer2_chain_t		*focus;		/* first valid chain */
	hammer2_cluster_item_t	array[HAMMER2_MAXCLUSTER];
};

typedef void (*hammer2_cluster_cb_t)(void *arg, const void *data,
				     int bytes, int error);

hammer2_cluster_t *hammer2_cluster_alloc(int nchains);
void hammer2_cluster_ref(hammer2_cluster_t *cluster);
void hammer2_cluster_drop(hammer2_cluster_t *cluster);
void hammer2_cluster_lock(hammer2_cluster_t *cluster, int how);
void hammer2_cluster_unlock(hammer2_cluster_t *cluster);
void hammer2_cluster_resolve_focus(hammer2_cluster_t *cluster);
hammer2_cluster_t *hammer2_cluster_copy(hammer2_cluster_t *cluster);
int hammer2_cluster_type(const hammer2_cluster_t *cluster);
const hammer2_blockref_t *hammer2_cluster_bref(const hammer2_cluster_t *c);
hammer2_cluster_t *hammer2_cluster_lookup_init(hammer2_cluster_t *cparent,
					       int flags);
int hammer2_focus_retry(hammer2_pfs_t *pfs, int error);
void hammer2_cluster_lookup_done(hammer2_cluster_t *cparent);
int hammer2_cluster_scan_done(hammer2_cluster_t *cparent,
			      hammer2_cluster_t *cluster, int error);
hammer2_cluster_t *hammer2_cluster_lookup(hammer2_cluster_t *cparent,
					  hammer2_key_t *key_nextp,
					  hammer2_key_t key_beg,
					  hammer2_key_t key_end, int flags);
hammer2_cluster_t *hammer2_cluster_next(hammer2_cluster_t *cparent,
					hammer2_cluster_t *cluster,
					hammer2_key_t *key_nextp,
					hammer2_key_t key_beg,
					hammer2_key_t key_end, int flags);
const hammer2_media_data_t *hammer2_cluster_rdata(hammer2_cluster_t *c);
int hammer2_cluster_load_async(hammer2_cluster_t *cluster,
			       hammer2_cluster_cb_t callback, void *arg);
hammer2_chain_t *hammer2_cluster_load_chain(hammer2_cluster_t *cluster);

/* Write side; callers hold every node's transaction lock exclusively. */
int hammer2_cluster_modify(hammer2_cluster_t *cluster, hammer2_tid_t mtid);
hammer2_inode_data_t *hammer2_cluster_modify_ip(hammer2_cluster_t *cluster,
						hammer2_tid_t mtid, int *errorp);
int hammer2_cluster_modsync(hammer2_cluster_t *cluster);
void hammer2_cluster_setmethod_check(hammer2_cluster_t *cluster, int check);
int hammer2_cluster_create(hammer2_cluster_t *cparent,
			   hammer2_cluster_t **clusterp, hammer2_key_t key,
			   int keybits, int type, size_t bytes,
			   hammer2_tid_t mtid);
int hammer2_cluster_delete(hammer2_cluster_t *cluster, hammer2_tid_t mtid);
int hammer2_cluster_resize(hammer2_cluster_t *cluster, size_t bytes,
			   hammer2_tid_t mtid);

/* ---------------------------------------------------- PFS, inodes, files */

typedef struct hammer2_pfs_info {
	char		label[HAMMER2_INODE_MAXNAME + 1];
	uint8_t		pfs_type;
	uint8_t		pfs_subtype;
	uint8_t		pfs_nmasters;
	hammer2_uuid_t	pfs_clid;
	hammer2_uuid_t	pfs_fsid;
	hammer2_tid_t	inum;
	hammer2_key_t	name_key;
} hammer2_pfs_info_t;

/* A PFS's commits as space admission sees them (hammer2_space.c). */
typedef struct hammer2_space {
	int		autocommit;	/* may commit to make room (a mount) */
	int		failed;		/* a commit failed half way: no more */
	hammer2_tid_t	reclaimed_tid;	/* the committed tree last bulkfreed */
	int64_t		reclaimed_ns;	/* when (CLOCK_MONOTONIC), 0: never */
} hammer2_space_t;

struct hammer2_pfs {
	hammer2_pfs_info_t	info;
	hammer2_space_t		space;
	hammer2_cluster_t	*iroot;		/* PFS root inode, one per node */
	hammer2_dev_t		*devs[HAMMER2_MAXCLUSTER];
	int			ndevs;
	uint64_t		healed_seen[HAMMER2_MAXCLUSTER]; /* node.healed
						 * when its root was looked up */
	/*
	 * Asked when the last link of a non-directory goes: non-zero keeps
	 * the inode (nlinks 0) for a later hammer2_inode_destroy, as while
	 * a FUSE client still has it open.
	 */
	int			(*keep_unlinked)(void *arg, hammer2_tid_t inum);
	void			*keep_arg;
};

typedef struct hammer2_dirent {
	hammer2_tid_t	inum;
	hammer2_key_t	key;
	uint8_t		type;
	uint16_t	namlen;
	uint8_t		name[HAMMER2_INODE_MAXNAME];
} hammer2_dirent_t;

typedef int (*hammer2_readdir_cb_t)(void *arg, const hammer2_dirent_t *ent);

int hammer2_uuid_random(hammer2_uuid_t *uuid);

/* The unix id sits in the last 4 bytes of HAMMER2's uid/gid uuid. */
static inline uint32_t
hammer2_uuid_xid(const hammer2_uuid_t *uuid)
{
	uint32_t id;

	memcpy(&id, &uuid->bytes[12], sizeof(id));
	return id;
}
int hammer2_pfs_inode_init(hammer2_inode_data_t *ip, const char *label,
			   int pfs_type, int subtype, int comp, int check,
			   int nmasters, const hammer2_uuid_t *clid, uint64_t now);
int hammer2_sroot_get(hammer2_dev_t **devs, int ndevs,
		      hammer2_cluster_t **sropp);
int hammer2_pfs_list(hammer2_dev_t **devs, int ndevs,
		     hammer2_pfs_info_t **infop, int *countp);
int hammer2_pfs_open(hammer2_dev_t **devs, int ndevs, const char *label,
		     hammer2_pfs_t **pfsp);
void hammer2_pfs_close(hammer2_pfs_t *pfs);
int hammer2_inode_lookup(hammer2_pfs_t *pfs, hammer2_tid_t inum, int flags,
			 hammer2_cluster_t **clusterp);
int hammer2_inode_get(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		      hammer2_cluster_t **clusterp);
int hammer2_inode_meta(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		       hammer2_inode_meta_t *meta, hammer2_blockref_t *bref);
uint64_t hammer2_inode_data_bytes(const hammer2_inode_meta_t *meta,
				  const hammer2_blockref_t *bref);
int hammer2_dir_lookup(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		       const uint8_t *name, size_t len, hammer2_dirent_t *ent);
int hammer2_dir_readdir(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
			hammer2_readdir_cb_t cb, void *arg);
int hammer2_dir_entries(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
			hammer2_dirent_t **entsp, size_t *countp);
int hammer2_dir_readdir_at(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
			   hammer2_key_t key_beg, hammer2_readdir_cb_t cb,
			   void *arg);
int hammer2_file_read(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		      hammer2_off_t off, void *buf, size_t len, size_t *donep);
int hammer2_file_next_data(hammer2_pfs_t *pfs, hammer2_tid_t inum,
			   hammer2_off_t off, hammer2_off_t *datap);
int hammer2_file_readlink(hammer2_pfs_t *pfs, hammer2_tid_t inum, char *buf,
			  size_t *lenp);

typedef struct hammer2_direct hammer2_direct_t;
void hammer2_file_readahead(hammer2_cluster_t *ip, hammer2_off_t off,
			    size_t len, const hammer2_direct_t *d);

/* Direct reads of a large window's blocks (hammer2_file_direct.c). */
hammer2_direct_t *hammer2_direct_start(hammer2_cluster_t *ip,
				       hammer2_off_t off, uint8_t *buf,
				       size_t len);
int hammer2_direct_chosen(const hammer2_direct_t *d, hammer2_off_t lbase);
void hammer2_direct_wait(hammer2_direct_t *d);
int hammer2_direct_next_failed(hammer2_direct_t *d, hammer2_off_t *lbasep);
void hammer2_direct_free(hammer2_direct_t *d);
size_t hammer2_direct_set_min(size_t bytes);

/*
 * Names and link targets, from a caller or from media, before they reach
 * the host: a name is one path component of 1..255 bytes (no '/', no NUL,
 * not "." or ".."), a target at most PATH_MAX - 1 bytes without NUL.
 */
#define HAMMER2_NAME_MAX	255
#define HAMMER2_SYMLINK_MAX	4095
int hammer2_name_validate(const uint8_t *name, size_t len);
int hammer2_symlink_validate(const uint8_t *target, size_t len);

/*
 * Tree digest (hammer2_digest.c): per path below a directory, what a
 * checker compares with a model; file contents as XXH3-64, holes as zeros.
 * Paths ("/a/b", relative to the directory) and link targets sit in the
 * arena.  Bounded by depth and by the limits; an error names its path.
 */
#define HAMMER2_DIGEST_MAXDEPTH	64

typedef struct hammer2_digest_ent {
	size_t		path_off;
	size_t		path_len;
	size_t		target_off;
	size_t		target_len;
	hammer2_tid_t	inum;
	uint64_t	size;
	uint64_t	mtime;
	uint64_t	nlinks;
	uint64_t	digest;		/* regular files */
	uint32_t	mode;
	uint32_t	uid;
	uint32_t	gid;
	uint8_t		type;
} hammer2_digest_ent_t;

typedef struct hammer2_digest_tree {
	hammer2_digest_ent_t *ents;
	size_t		count;
	size_t		cap;
	char		*arena;
	size_t		arena_len;
	size_t		arena_cap;
} hammer2_digest_tree_t;

typedef struct hammer2_digest_limits {
	size_t		max_entries;
	size_t		max_arena;	/* path and target bytes */
	uint64_t	max_bytes;	/* file bytes hashed */
} hammer2_digest_limits_t;

/* An absolute path within the PFS to its inode (hammer2_namei.c). */
int hammer2_namei(hammer2_pfs_t *pfs, const char *path, size_t len,
		  hammer2_tid_t *inump);

int hammer2_digest_tree(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
			const hammer2_digest_limits_t *lim,
			hammer2_digest_tree_t *tree);
void hammer2_digest_tree_free(hammer2_digest_tree_t *tree);
uint64_t hammer2_digest_bytes(const void *data, size_t len);
int hammer2_dirent_decode(hammer2_cluster_t *cluster, hammer2_dirent_t *ent);
int hammer2_dir_get(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
		    hammer2_cluster_t **dirp);

/*
 * Modifications.  Each runs inside a write transaction on every node of
 * the PFS (hammer2_pfs_trans_begin(pfs, 1)); hammer2_pfs_flush commits.
 */
#define HAMMER2_SETATTR_MODE	0x01
#define HAMMER2_SETATTR_UID	0x02
#define HAMMER2_SETATTR_GID	0x04
#define HAMMER2_SETATTR_ATIME	0x08
#define HAMMER2_SETATTR_MTIME	0x10
#define HAMMER2_SETATTR_CTIME	0x20

typedef struct hammer2_attr {
	int		mask;		/* HAMMER2_SETATTR_* given */
	uint8_t		type;		/* HAMMER2_OBJTYPE_* (create) */
	uint32_t	mode;
	uint32_t	uid;
	uint32_t	gid;
	uint64_t	atime;		/* microseconds */
	uint64_t	mtime;
	uint64_t	ctime;
	uint32_t	rmajor;
	uint32_t	rminor;
} hammer2_attr_t;

#define HAMMER2_RENAME_NOREPLACE	0x0001

uint64_t hammer2_time_now(void);
int64_t hammer2_mono_ns(void);
hammer2_tid_t hammer2_pfs_mtid(hammer2_pfs_t *pfs);
int hammer2_dirent_find(hammer2_cluster_t *dir, const uint8_t *name,
			size_t len, hammer2_cluster_t **cparentp,
			hammer2_cluster_t **clusterp, hammer2_dirent_t *ent);
void hammer2_dirent_release(hammer2_cluster_t *cparent,
			    hammer2_cluster_t *cluster);
int hammer2_dirent_add(hammer2_cluster_t *dir, const uint8_t *name, size_t len,
		       hammer2_tid_t inum, uint8_t type, hammer2_tid_t mtid);
void hammer2_pfs_trans_begin(hammer2_pfs_t *pfs, int write);
void hammer2_pfs_trans_end(hammer2_pfs_t *pfs);
int hammer2_pfs_flush(hammer2_pfs_t *pfs);
int hammer2_pfs_pending(hammer2_pfs_t *pfs);

/*
 * Space admission (hammer2_space.c).  hammer2_space_reserve admits a
 * modification writing `bytes` of data only if the commit that carries
 * it will have room (committing and bulkfreeing first when short), else
 * ENOSPC; hammer2_space_commit commits, refusing with ENOSPC (nothing
 * written, everything kept) what would not fit.  hammer2_space_tid is
 * the newest transaction a live node committed: it moves at each commit.
 */
#define HAMMER2_SPACE_GROWS	0	/* adds data or inodes */
#define HAMMER2_SPACE_CHANGES	1	/* removes, renames, sets attributes */

int hammer2_space_reserve(hammer2_pfs_t *pfs, uint64_t bytes, int kind);
int hammer2_space_commit(hammer2_pfs_t *pfs);
int hammer2_space_reclaim(hammer2_pfs_t *pfs);
uint64_t hammer2_space_avail(hammer2_pfs_t *pfs);
hammer2_tid_t hammer2_space_tid(hammer2_pfs_t *pfs);
int hammer2_inode_create(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
			 const uint8_t *name, size_t len,
			 const hammer2_attr_t *attr, hammer2_tid_t *inump);
int hammer2_inode_unlink(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
			 const uint8_t *name, size_t len, int isdir);
int hammer2_inode_link(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		       hammer2_tid_t dinum, const uint8_t *name, size_t len);
int hammer2_inode_rename(hammer2_pfs_t *pfs, hammer2_tid_t sdinum,
			 const uint8_t *sname, size_t slen,
			 hammer2_tid_t tdinum, const uint8_t *tname,
			 size_t tlen, int flags);
int hammer2_inode_setattr(hammer2_pfs_t *pfs, hammer2_tid_t inum,
			  const hammer2_attr_t *attr);
/* Linux's largest file (MAX_LFS_FILESIZE): what FUSE and the host carry */
#define HAMMER2_FILE_MAX	((hammer2_off_t)INT64_MAX)
int hammer2_file_write(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		       hammer2_off_t off, const void *buf, size_t len);
int hammer2_file_truncate(hammer2_pfs_t *pfs, hammer2_tid_t inum,
			  hammer2_off_t size);

/* ------------------------------------------------------- administration */

int hammer2_pfs_create(hammer2_dev_t **devs, int ndevs, const char *label,
		       int pfs_type, const hammer2_uuid_t *clid, int comp,
		       int check);
int hammer2_pfs_delete(hammer2_dev_t **devs, int ndevs, const char *label);
int hammer2_pfs_snapshot(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
			 const char *label);
int hammer2_inode_setalgo(hammer2_pfs_t *pfs, hammer2_tid_t inum, int comp,
			  int check);
int hammer2_dirent_destroy(hammer2_pfs_t *pfs, hammer2_tid_t dinum,
			   const uint8_t *name, size_t len);
int hammer2_inode_destroy(hammer2_pfs_t *pfs, hammer2_tid_t inum);
int hammer2_pfs_orphans(hammer2_pfs_t *pfs, hammer2_tid_t **inumsp,
			size_t *countp);
int hammer2_bulkfree(hammer2_dev_t *hmp, uint64_t *freedp);
int hammer2_bulkfree_scan(hammer2_dev_t *hmp, uint64_t *freedp);
int hammer2_growfs(hammer2_dev_t *hmp, hammer2_off_t size);

/* -------------------------------------------------------------- freemap */

/* The allocation radix of a block of `bytes` (1 KiB .. 64 KiB steps). */
static inline int
hammer2_alloc_radix(size_t bytes)
{
	int radix = HAMMER2_RADIX_MIN;

	while ((1UL << radix) < bytes)
		++radix;
	return radix;
}

int hammer2_freemap_alloc(hammer2_dev_t *hmp, int type, size_t bytes,
			  hammer2_off_t *offp);
int hammer2_freemap_flush(hammer2_dev_t *hmp, hammer2_tid_t tid);
int hammer2_freemap_leaf(hammer2_dev_t *hmp, hammer2_off_t l1base, int create,
			 hammer2_chain_t **leafp);
void hammer2_freemap_destroy(hammer2_dev_t *hmp);
uint64_t hammer2_freemap_room(hammer2_dev_t *hmp, int recount);

/* ----------------------------------------------------------------- fsck */

typedef struct hammer2_walk_stats {
	uint64_t	total;
	uint64_t	inode;
	uint64_t	indirect;
	uint64_t	data;
	uint64_t	dirent;
	uint64_t	freemap_node;
	uint64_t	freemap_leaf;
	uint64_t	bytes;
	uint64_t	errors;
} hammer2_walk_stats_t;

/*
 * Called for every non-empty blockref, parents before children.  data is
 * the raw media (NULL when the blockref has none), error is 0 or the
 * errno of reading/verifying it (the message is in hammer2_errmsg()).
 * A non-zero return stops the walk.
 */
typedef int (*hammer2_walk_cb_t)(void *arg, int depth,
				 const hammer2_blockref_t *bref,
				 const void *data, int bytes, int error);

int hammer2_walk(hammer2_dev_t *hmp, const hammer2_blockref_t *bref,
		 hammer2_walk_cb_t cb, void *arg, hammer2_walk_stats_t *stats);
int hammer2_walk_zone(hammer2_dev_t *hmp, int zone, int freemap,
		      hammer2_walk_cb_t cb, void *arg,
		      hammer2_walk_stats_t *stats);

typedef struct hammer2_extent {
	hammer2_off_t	off;
	hammer2_off_t	bytes;
} hammer2_extent_t;

typedef struct hammer2_leafcopy {
	hammer2_off_t		base;
	hammer2_bmap_data_t	bmap[HAMMER2_FREEMAP_LEVELN_PSIZE /
				     sizeof(hammer2_bmap_data_t)];
} hammer2_leafcopy_t;

typedef struct hammer2_blockmap {
	hammer2_extent_t	*ext;		/* sorted, distinct */
	size_t			next, maxext;
	hammer2_leafcopy_t	*leaves;
	size_t			nleaves, maxleaves;
	int			oom;
	size_t			unread;		/* tree blocks that failed: partial */
} hammer2_blockmap_t;

int hammer2_blockmap_build(hammer2_dev_t *hmp, int zone, hammer2_blockmap_t *bm);
int hammer2_blockmap_extent(void *arg, int depth, const hammer2_blockref_t *bref,
			    const void *data, int bytes, int error);
int hammer2_blockmap_leaf(void *arg, int depth, const hammer2_blockref_t *bref,
			  const void *data, int bytes, int error);
int hammer2_blockmap_finish(hammer2_blockmap_t *bm, int error,
			    const hammer2_walk_stats_t *stats);
void hammer2_blockmap_free(hammer2_blockmap_t *bm);
int hammer2_blockmap_state(const hammer2_blockmap_t *bm, hammer2_off_t off);
int hammer2_blockmap_covered(const hammer2_blockmap_t *bm, hammer2_off_t off,
			     hammer2_off_t len);
int hammer2_blockmap_reserved(hammer2_dev_t *hmp, hammer2_off_t granule);

typedef struct hammer2_fsck_freemap {
	uint64_t	referenced;	/* distinct blocks of the volume tree */
	uint64_t	unmarked;	/* ... the freemap calls free */
	uint64_t	overlaps;	/* pairs of different blocks sharing bytes */
	uint64_t	allocated_bytes;
	uint64_t	leaked_bytes;	/* allocated, used by nothing */
	void		(*report)(void *arg, const char *msg);
	void		*arg;
	int		nreported;
} hammer2_fsck_freemap_t;

void hammer2_fsck_freemap(hammer2_dev_t *hmp, const hammer2_blockmap_t *bm,
			  hammer2_fsck_freemap_t *result);

#define HAMMER2_FSCK_REPORT_MAX	1000	/* messages kept; all are counted */

typedef struct hammer2_fsck_tree {
	hammer2_walk_stats_t	stats;		/* the blockref walk's */
	uint64_t		problems;	/* bad blocks and logical errors */
	void			(*report)(void *arg, const char *msg);
	void			*arg;
	int			nreported;
	hammer2_blockmap_t	*map;		/* set: the walk records blocks */
} hammer2_fsck_tree_t;

int hammer2_fsck_tree(hammer2_dev_t *hmp, int zone, hammer2_fsck_tree_t *r);
void hammer2_fsck_names(hammer2_dev_t *hmp, hammer2_fsck_tree_t *r);
void hammer2_fsck_report(hammer2_fsck_tree_t *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* fsck of one header copy: its volume tree, freemap tree and freemap. */
typedef struct hammer2_fsck_zone {
	hammer2_fsck_tree_t	tree;		/* the volume tree */
	hammer2_fsck_tree_t	fmtree;		/* the freemap tree's blocks */
	hammer2_fsck_freemap_t	freemap;	/* the freemap against the tree */
} hammer2_fsck_zone_t;

int hammer2_fsck_zone(hammer2_dev_t *hmp, int zone, hammer2_fsck_zone_t *r);

#endif /* HAMMER2_H_ */
