/*
 * The resync walk's read-ahead.  A source one round trip away (NBD) would
 * serve a walk that reads as it goes one block at a time, so the blocks of
 * the elements ahead of it are loaded in large reads (neighbouring buffers
 * of a source coalesced) while it copies; and for the inodes among them,
 * the blocks their block sets point to, and the data under those that are
 * indirect blocks, so a tree of small files streams as a large one does.
 *
 * What lies below an inode is read from the loaded buffers as a hint: it
 * is not verified, and every offset it yields only starts a read-ahead,
 * which keeps to the device (hammer2_io_prefetch).
 */
#include <stdlib.h>
#include "hammer2_resync.h"

#define PREFETCH_ELEMS	128	/* elements ahead of the walk */
#define PREFETCH_STEP	32	/* elements walked between two calls */
#define BELOW_MAX	256	/* blocks below inodes, a call (16 MiB of
				 * the cache's 128; loaded ones count too) */

/* Whether the pass copies what bref (an element or below one) holds. */
static int
wanted(const struct resync *rs, hammer2_tid_t mirror_tid, hammer2_off_t data_off)
{
	int radix = (int)(data_off & HAMMER2_OFF_MASK_RADIX);

	return radix >= HAMMER2_RADIX_MIN && radix <= HAMMER2_RADIX_MAX &&
	       (mirror_tid > rs->since || (rs->flags & HAMMER2_RESYNC_SCRUB));
}

static void
run_add(hammer2_io_run_t *run, hammer2_dev_t *dev, hammer2_off_t data_off)
{
	hammer2_io_run_add(run, dev, data_off & HAMMER2_OFF_MASK &
			   ~HAMMER2_PBUFMASK64);
}

/*
 * Read ahead what bref points to: a data block; an indirect block's data
 * blocks once it is loaded, else the indirect block itself (a later call
 * finds it loaded).
 */
static void
below_bref(const struct resync *rs, hammer2_dev_t *dev,
	   const hammer2_blockref_t *b, hammer2_blockref_t *scratch,
	   hammer2_io_run_t *run, int *budget)
{
	int bytes;

	if (*budget <= 0 || !wanted(rs, b->mirror_tid, b->data_off))
		return;
	--*budget;
	if (b->type == HAMMER2_BREF_TYPE_DATA) {
		run_add(run, dev, b->data_off);
		return;
	}
	if (b->type != HAMMER2_BREF_TYPE_INDIRECT)
		return;
	bytes = 1 << (int)(b->data_off & HAMMER2_OFF_MASK_RADIX);
	if (HAMMER2_DEC_COMP(b->methods) != HAMMER2_COMP_NONE ||
	    !hammer2_io_peek(dev, b->data_off & HAMMER2_OFF_MASK, scratch,
			     bytes)) {
		run_add(run, dev, b->data_off);
		return;
	}
	for (int k = 0; k < bytes / (int)sizeof(*scratch) && *budget > 0; ++k)
		if (scratch[k].type == HAMMER2_BREF_TYPE_DATA &&
		    wanted(rs, scratch[k].mirror_tid, scratch[k].data_off)) {
			run_add(run, dev, scratch[k].data_off);
			--*budget;
		}
}

/*
 * Read ahead below the inodes among e[from, to) whose blocks are loaded,
 * BELOW_MAX blocks at most: a big file's are read as the walk gets there.
 */
static void
prefetch_below(const struct resync *rs, const struct elems *e, size_t from,
	       size_t to, hammer2_io_run_t *run)
{
	hammer2_blockref_t *scratch = NULL;
	hammer2_inode_data_t ip;
	int budget = BELOW_MAX;

	for (size_t i = from; i < to && budget > 0; ++i) {
		const struct elem *el = &e->v[i];
		hammer2_dev_t *dev = rs->src[el->src];

		if (el->type != HAMMER2_BREF_TYPE_INODE ||
		    !wanted(rs, el->mirror_tid, el->data_off) ||
		    !hammer2_io_peek(dev, el->data_off & HAMMER2_OFF_MASK, &ip,
				     sizeof(ip)) ||
		    (ip.meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA))
			continue;
		if (scratch == NULL &&
		    (scratch = malloc(HAMMER2_PBUFSIZE)) == NULL)
			return;			/* read-ahead is only a hint */
		for (int k = 0; k < HAMMER2_SET_COUNT; ++k)
			below_bref(rs, dev, &ip.u.blockset.blockref[k],
				   scratch, run, &budget);
	}
	free(scratch);
}

/*
 * With the walk at index at of e: start loading the blocks of the next
 * PREFETCH_ELEMS elements, those changed since dst's last transaction (all
 * of them for a scrub), and below the inodes among them that earlier
 * calls started (a call after one that found an indirect block unloaded
 * finds it loaded).  What is loaded or loading already is passed over.
 * Returns the index of the next call.
 */
size_t
srcs_prefetch(const struct resync *rs, const struct elems *e, size_t at)
{
	hammer2_io_run_t run = { 0 };
	size_t to = at + PREFETCH_ELEMS < e->n ? at + PREFETCH_ELEMS : e->n;
	size_t below = to - at > PREFETCH_STEP ? to - PREFETCH_STEP : at;

	for (size_t i = at; i < to; ++i)
		if (wanted(rs, e->v[i].mirror_tid, e->v[i].data_off))
			run_add(&run, rs->src[e->v[i].src], e->v[i].data_off);
	prefetch_below(rs, e, at, below, &run);
	hammer2_io_run_flush(&run);
	return at + PREFETCH_STEP;
}
