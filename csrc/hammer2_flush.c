/*
 * Flush: commit every modified chain, bottom-up.  Each modified block is
 * written to a newly allocated place (copy-on-write; nothing live is ever
 * overwritten), its new blockref (offset, size, check code, mirror_tid)
 * goes into its parent, and so on up to the volume header, which is
 * written last, to the next header copy in rotation, after a barrier.  A
 * crash before that write leaves the previous header, and everything it
 * references, intact.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"
#include "hammer2_debug.h"

/* The inode a chain belongs to (nearest INODE at or above it). */
static const hammer2_inode_meta_t *
owner_meta(hammer2_chain_t *chain)
{
	for (hammer2_chain_t *c = chain; c; c = c->parent)
		if (c->bref.type == HAMMER2_BREF_TYPE_INODE && c->data)
			return &c->data->ipdata.meta;
	return NULL;
}

/* Number of leaf elements reachable without entering another inode. */
static uint16_t
leaf_count(hammer2_chain_t *chain)
{
	hammer2_blockref_t *base;
	uint32_t n = 0;
	int count;

	base = hammer2_chain_base(chain, &count);
	for (int i = 0; i < count; ++i) {
		if (base[i].type == HAMMER2_BREF_TYPE_EMPTY)
			continue;
		n += base[i].type == HAMMER2_BREF_TYPE_INDIRECT ?
		     base[i].leaf_count : 1;
	}
	return n > 65535 ? 65535 : (uint16_t)n;
}

/*
 * An inode's or indirect block's blockref carries what lies under it,
 * as the real tools count it: data_count, the media bytes of every block
 * below (data, dirent, indirect and inode blocks, through sub-inodes);
 * inode_count, the inodes below.  Children are flushed first, so their
 * own blockrefs already hold their totals.
 */
static void
stats_sum(hammer2_chain_t *chain, hammer2_blockref_t *bref)
{
	hammer2_blockref_t *base;
	uint64_t data = 0, inodes = 0;
	int count, radix;

	base = hammer2_chain_base(chain, &count);
	for (int i = 0; i < count; ++i) {
		if (base[i].type == HAMMER2_BREF_TYPE_EMPTY)
			continue;
		radix = (int)(base[i].data_off & HAMMER2_OFF_MASK_RADIX);
		data += radix ? (uint64_t)1 << radix : 0;
		if (base[i].type == HAMMER2_BREF_TYPE_INODE ||
		    base[i].type == HAMMER2_BREF_TYPE_INDIRECT) {
			data += base[i].embed.stats.data_count;
			inodes += base[i].embed.stats.inode_count +
				  (base[i].type == HAMMER2_BREF_TYPE_INODE);
		}
	}
	bref->embed.stats.data_count = data;
	bref->embed.stats.inode_count = inodes;
}

static int
array_empty(hammer2_chain_t *chain)
{
	hammer2_blockref_t *base;
	int count;

	base = hammer2_chain_base(chain, &count);
	for (int i = 0; i < count; ++i)
		if (base[i].type != HAMMER2_BREF_TYPE_EMPTY)
			return 0;
	return 1;
}

/* At most this many data blocks are encoded side by side (4 MiB). */
#define FLUSH_ENCODE_WINDOW	64

/* A data chain's encoding job, with the inode's algorithms. */
static void
encode_prepare(hammer2_chain_t *chain, hammer2_encjob_t *j, uint8_t *dst)
{
	const hammer2_inode_meta_t *meta = owner_meta(chain->parent);

	KKASSERT(chain->bref.type == HAMMER2_BREF_TYPE_DATA && chain->data);
	memset(j, 0, sizeof(*j));
	j->src = (const uint8_t *)chain->data;
	j->len = chain->bytes;
	j->comp = meta ? HAMMER2_DEC_ALGO(meta->comp_algo) : HAMMER2_COMP_NONE;
	j->level = meta ? (meta->comp_algo >> 4) : 0;
	j->check = HAMMER2_DEC_CHECK(chain->bref.methods);
	/* all-zero blocks become holes (not with compression or checks off) */
	j->zero_holes = meta &&
			HAMMER2_DEC_ALGO(meta->comp_algo) != HAMMER2_COMP_NONE &&
			HAMMER2_DEC_ALGO(meta->check_algo) != HAMMER2_CHECK_NONE;
	j->dst = dst;
}

/*
 * Encode jobs[0..n) of chains c[]: what another node's flush encodes of
 * the same shared data (hammer2_dbuf.c) is copied from it, the rest
 * encoded side by side, what this flush claimed kept for the others.
 */
static void
encode_run(hammer2_chain_t **c, hammer2_encjob_t *jobs, int n)
{
	int how[FLUSH_ENCODE_WINDOW];

	KKASSERT(n <= FLUSH_ENCODE_WINDOW);
	for (int i = 0; i < n; ++i)
		how[i] = hammer2_chain_encode_claim(c[i], &jobs[i]);
	hammer2_encode_batch(jobs, n);
	for (int i = 0; i < n; ++i)
		if (how[i] == HAMMER2_ENC_CLAIMED)
			hammer2_chain_encoded_keep(c[i], &jobs[i]);
	for (int i = 0; i < n; ++i)
		if (how[i] == HAMMER2_ENC_WAIT)
			hammer2_chain_encoded_wait(c[i], &jobs[i]);
}

/*
 * Allocate, check and write one modified chain (a data block as job
 * encoded it); update parent.
 */
static int
flush_write(hammer2_chain_t *chain, hammer2_tid_t tid,
	    const hammer2_encjob_t *job)
{
	hammer2_dev_t *hmp = chain->hmp;
	hammer2_blockref_t *bref = &chain->bref;
	uint8_t *media = (uint8_t *)chain->data;
	size_t psize = chain->bytes;
	hammer2_iohold_t hold;
	hammer2_off_t off;
	int check, comp = HAMMER2_COMP_NONE;
	int error;

	/*
	 * The check algorithm is the blockref's own (set when the chain was
	 * created); a data block's compression comes from its inode.
	 */
	check = HAMMER2_DEC_CHECK(bref->methods);
	comp = HAMMER2_DEC_COMP(bref->methods);
	if (job) {
		KKASSERT(bref->type == HAMMER2_BREF_TYPE_DATA && !job->zero);
		comp = job->comp;
		psize = job->psize;
		media = job->dst;
	}
	if (chain->bytes == 0) {	/* e.g. a short-named dirent */
		bref->data_off = 0;
		bref->mirror_tid = tid;
		return hammer2_chain_base_update(chain->parent, bref);
	}
	if (bref->type == HAMMER2_BREF_TYPE_INODE ||
	    bref->type == HAMMER2_BREF_TYPE_INDIRECT) {
		bref->leaf_count = leaf_count(chain);
		stats_sum(chain, bref);
	}
	error = hammer2_freemap_alloc(hmp, bref->type, psize, &off);
	if (error == 0) {
		bref->data_off = off | (hammer2_off_t)hammer2_alloc_radix(psize);
		bref->methods = (uint8_t)(HAMMER2_ENC_COMP(comp) |
					  HAMMER2_ENC_CHECK(check));
		bref->mirror_tid = tid;
		if (job)
			bref->check = job->bref.check;
		else
			hammer2_check_set(bref, check, media, psize);
		/* planted bug (tests only): drop one data block in four */
		if (!(hammer2_planted_bug & HAMMER2_BUG_DROPWRITE) ||
		    bref->type != HAMMER2_BREF_TYPE_DATA || (off >> 10) % 4 != 1)
			error = hammer2_io_write_borrow(hmp, off, media,
				(int)psize,
				hammer2_chain_media_hold(chain, media, &hold) ?
				&hold : NULL);
	}
	if (error == 0)
		error = hammer2_chain_base_update(chain->parent, bref);
	if (error == 0 && bref->type == HAMMER2_BREF_TYPE_DATA) {
		/* drop the logical copy; reads decode the media again */
		hammer2_chain_data_free(chain);
		chain->bytes = (uint32_t)psize;
		chain->flags &= ~(HAMMER2_CHAIN_OWNED | HAMMER2_CHAIN_LOADED);
	}
	return error;
}

static int flush_chain(hammer2_chain_t *chain, hammer2_tid_t tid,
		       hammer2_encjob_t *job);

static int
is_data_job(hammer2_chain_t *chain)
{
	return chain->bref.type == HAMMER2_BREF_TYPE_DATA &&
	       (chain->flags & HAMMER2_CHAIN_MODIFIED);
}

/*
 * Children in order, each window of data blocks encoded side by side
 * first (hammer2_encode_batch); the rest of each flush is unchanged.
 */
static int
flush_kids(hammer2_chain_t **kids, int n, hammer2_tid_t tid)
{
	hammer2_encjob_t *job[FLUSH_ENCODE_WINDOW];
	hammer2_chain_t *enc[FLUSH_ENCODE_WINDOW];
	hammer2_encjob_t *jobs = NULL;
	uint8_t *bufs = NULL;
	int i, w, nw, nj, error = 0;

	for (i = 0; i < n && error == 0; i += nw) {
		nw = n - i < FLUSH_ENCODE_WINDOW ? n - i : FLUSH_ENCODE_WINDOW;
		for (w = nj = 0; w < nw; ++w)
			nj += is_data_job(kids[i + w]);
		if (nj > 1 && jobs == NULL) {
			/* short of memory: one at a time, as flush_chain does */
			jobs = malloc(FLUSH_ENCODE_WINDOW * sizeof(*jobs));
			bufs = malloc((size_t)FLUSH_ENCODE_WINDOW *
				      HAMMER2_PBUFSIZE);
			if (jobs == NULL || bufs == NULL) {
				free(jobs);
				free(bufs);
				jobs = NULL;
				bufs = NULL;
			}
		}
		for (w = nj = 0; w < nw; ++w) {
			job[w] = NULL;
			if (jobs && is_data_job(kids[i + w])) {
				job[w] = &jobs[nj];
				enc[nj] = kids[i + w];
				encode_prepare(kids[i + w], &jobs[nj],
					       bufs + (size_t)nj *
						      HAMMER2_PBUFSIZE);
				nj++;
			}
		}
		encode_run(enc, jobs, nj);
		for (w = 0; w < nw && error == 0; ++w)
			if (kids[i + w]->flags & HAMMER2_CHAIN_MODIFIED)
				error = flush_chain(kids[i + w], tid, job[w]);
	}
	free(jobs);
	free(bufs);
	return error;
}

static int
flush_children(hammer2_chain_t *chain, hammer2_tid_t tid)
{
	hammer2_chain_t **kids;
	int n, error;

	pthread_mutex_lock(&chain->clock);
	n = chain->nchildren;
	kids = n ? malloc((size_t)n * sizeof(*kids)) : NULL;
	for (int i = 0; kids && i < n; ++i) {
		kids[i] = chain->children[i];
		hammer2_chain_ref(kids[i]);
	}
	pthread_mutex_unlock(&chain->clock);
	if (n && kids == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	error = flush_kids(kids, n, tid);
	for (int i = 0; i < n; ++i)
		hammer2_chain_drop(kids[i]);
	free(kids);
	return error;
}

/* For assertions: no child of chain awaits a flush. */
static int
children_clean(hammer2_chain_t *chain)
{
	int clean = 1;

	pthread_mutex_lock(&chain->clock);
	for (int i = 0; i < chain->nchildren; ++i)
		if (chain->children[i]->flags & HAMMER2_CHAIN_MODIFIED)
			clean = 0;
	pthread_mutex_unlock(&chain->clock);
	return clean;
}

static int
flush_chain(hammer2_chain_t *chain, hammer2_tid_t tid, hammer2_encjob_t *job)
{
	hammer2_encjob_t one;
	int error;

	KKASSERT(chain->flags & HAMMER2_CHAIN_MODIFIED);
	error = flush_children(chain, tid);
	if (error)
		return error;
	/* bottom-up: the blockrefs this block gets written with are final */
	KKASSERT(children_clean(chain));
	switch (chain->bref.type) {
	case HAMMER2_BREF_TYPE_VOLUME:
	case HAMMER2_BREF_TYPE_FREEMAP:
		return 0;	/* written with the volume header */
	case HAMMER2_BREF_TYPE_INDIRECT:
		if (array_empty(chain)) {	/* collapse */
			hammer2_chain_drop_empty(chain);
			return 0;
		}
		break;
	case HAMMER2_BREF_TYPE_DATA:
		if (job == NULL) {
			/* one scratch buffer a device: its flushes take turns */
			if (chain->hmp->encbuf == NULL &&
			    (chain->hmp->encbuf = malloc(HAMMER2_PBUFSIZE)) == NULL)
				return hammer2_seterr(ENOMEM, "out of memory");
			encode_prepare(chain, &one, chain->hmp->encbuf);
			encode_run(&chain, &one, 1);
			job = &one;
		}
		if (job->zero) {
			hammer2_chain_drop_empty(chain);
			return 0;
		}
		break;
	default:
		break;
	}
	error = flush_write(chain, tid, job);
	if (error == 0)
		hammer2_chain_clear_modified(chain);
	return error;
}

/*
 * Whether what is modified fits in the free space, as the allocator can
 * place it: every block counted at its full power-of-two size, into free
 * 64 KiB runs only (smaller blocks fit in any of those, and scattered
 * pieces may not hold a whole one), with 1/16 spare for the packing of
 * small blocks.  A commit that would not fit is refused before it writes
 * anything, so a bulkfree can make room and the commit be tried again.
 */
int
hammer2_flush_fits(hammer2_dev_t *hmp)
{
	uint64_t need = hmp->dirty_bytes;

	if (need == 0)
		return 1;
	need += need / 16 + HAMMER2_PBUFSIZE;
	/* the count kept since the last commit, recounted if it seems short */
	return hammer2_freemap_room(hmp, 0) >= need ||
	       hammer2_freemap_room(hmp, 1) >= need;
}

/*
 * After a failed flush (or write-ahead) the allocator and the tree may be
 * half committed: the node takes no more flushes and keeps its last
 * completed one (the cluster layer resyncs it).
 */
static int
flush_disabled(hammer2_dev_t *hmp)
{
	return hammer2_seterr(hmp->flush_error, "%s: flushes disabled after a "
			      "failed flush; the device holds transaction %llu",
			      hmp->path, (unsigned long long)
			      hmp->vh[hmp->volhdrno].mirror_tid);
}

/*
 * Write modified DATA chains ahead of the commit, as it would write them
 * (encoded, allocated, written, each blockref put in its parent), so a
 * writer building much data before it commits (a resync) has the device
 * writes overlap the building; the commit does the rest.  Skipped where
 * the commit could not fit: it then reports it, having written nothing.
 * Callers hold the transaction lock exclusively.
 */
int
hammer2_flush_ahead(hammer2_dev_t *hmp, hammer2_chain_t **chains, int n)
{
	uint64_t room;
	int error;

	KKASSERT(hammer2_trans_writing(hmp));
	for (int i = 0; i < n; ++i)
		KKASSERT(chains[i]->hmp == hmp &&
			 chains[i]->bref.type == HAMMER2_BREF_TYPE_DATA);
	if (hmp->flush_error)
		return flush_disabled(hmp);
	if (!hammer2_flush_fits(hmp))
		return 0;
	error = flush_kids(chains, n, hmp->mtid);
	if (error) {
		hmp->flush_error = error;	/* allocated, half written */
		return hammer2_preerr(error, "write-ahead");
	}
	/* each block may have broken a free 64 KiB run the room counted */
	room = (uint64_t)n * HAMMER2_PBUFSIZE;
	hmp->room = hmp->room > room ? hmp->room - room : 0;
	return 0;
}

/*
 * Commit all modifications (caller holds the transaction lock
 * exclusively).  Order: data and metadata, freemap, barrier, volume
 * header, barrier.
 */
int
hammer2_flush(hammer2_dev_t *hmp)
{
	hammer2_volume_data_t *vd = hmp->voldata;
	hammer2_tid_t tid = hmp->mtid;
	int zone, error;

	if (!(hmp->vchain->flags & HAMMER2_CHAIN_MODIFIED) &&
	    !(hmp->fchain->flags & HAMMER2_CHAIN_MODIFIED))
		return 0;
	if (hmp->readonly)
		return hammer2_seterr(EROFS, "%s: opened read-only", hmp->path);
	KKASSERT(hammer2_trans_writing(hmp));
	if (hmp->flush_error)
		return flush_disabled(hmp);
	if (!hammer2_flush_fits(hmp))
		return hammer2_seterr(ENOSPC, "%s: no room to commit %llu "
				      "bytes (%llu free in 64 KiB runs); "
				      "nothing written", hmp->path,
				      (unsigned long long)hmp->dirty_bytes,
				      (unsigned long long)hammer2_freemap_room(hmp, 0));
	error = flush_chain(hmp->vchain, tid, NULL);
	if (error == 0)
		error = hammer2_freemap_flush(hmp, tid);
	if (error == 0)
		error = hammer2_io_flush(hmp);
	if (error) {
		hmp->flush_error = error;
		return hammer2_preerr(error, "flush of transaction %llu",
				      (unsigned long long)tid);
	}
	vd->mirror_tid = tid;
	vd->freemap_tid = tid;
	zone = (hmp->volhdrno + 1) % hmp->nvolhdrs;
	error = hammer2_volhdr_write(hmp, zone);
	if (error == 0)
		error = hammer2_io_flush(hmp);
	if (error) {
		hmp->flush_error = error;
		return hammer2_preerr(error, "volume header write");
	}
	hmp->vchain->flags &= ~HAMMER2_CHAIN_MODIFIED;
	hmp->fchain->flags &= ~HAMMER2_CHAIN_MODIFIED;
	/* a modified chain's parent is too: nothing below is left */
	KKASSERT(children_clean(hmp->vchain) && children_clean(hmp->fchain));
	KKASSERT(hmp->dirty_bytes == 0);	/* what it counted went out */
	hmp->mtid = tid + 1;
	return 0;
}
