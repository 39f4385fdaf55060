/*
 * bulkfree: scan every block the current volume tree references (all
 * PFSes and snapshots) and free, in the freemap, allocated space that
 * nothing references any more.  Done in one pass after a flush (or with
 * modifications pending that a flush found no room for); blocks
 * only older header copies still reference are freed too, so those
 * copies stop being usable fallbacks (the kernel stages frees over two
 * passes for the same reason).
 */
#include <errno.h>
#include <string.h>
#include "hammer2.h"

#define L1_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX)
#define L0_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL0_RADIX)
#define GRANULE		((hammer2_off_t)HAMMER2_FREEMAP_BLOCK_SIZE)
#define GRANULES	((int)(L0_BYTES / GRANULE))

static uint64_t
free_segment(hammer2_dev_t *hmp, const hammer2_blockmap_t *bm,
	     hammer2_bmap_data_t *bmap, hammer2_off_t seg)
{
	uint64_t freed = 0;
	int used = 0;

	for (int g = 0; g < GRANULES; ++g) {
		hammer2_off_t off = seg + (hammer2_off_t)g * GRANULE;
		int shift = (g % 32) * 2;

		if (((bmap->bitmapq[g / 32] >> shift) & 3) == 0)
			continue;
		if (hammer2_blockmap_reserved(hmp, off) ||
		    hammer2_blockmap_covered(bm, off, GRANULE)) {
			++used;
			continue;
		}
		bmap->bitmapq[g / 32] &= ~(3ULL << shift);
		freed += GRANULE;
	}
	if (freed == 0)
		return 0;
	bmap->avail += (uint32_t)freed;
	if (used == 0) {
		bmap->avail = (uint32_t)L0_BYTES;
		bmap->class = 0;
		bmap->linear = 0;
	} else {
		/* no more packing into a granule that may have been freed */
		bmap->linear = (int32_t)((bmap->linear + GRANULE - 1) &
					 ~(GRANULE - 1));
	}
	return freed;
}

/*
 * Free, in the freemap in memory, what the committed tree (the header
 * copy in use) does not reference; the next commit writes the freemap.
 * Blocks modified since that commit are not allocated yet, and the ones
 * they replace are still referenced, so this is safe with modifications
 * pending, as long as no flush failed half way (its blocks would be
 * referenced by nothing committed).
 */
int
hammer2_bulkfree_scan(hammer2_dev_t *hmp, uint64_t *freedp)
{
	hammer2_blockmap_t bm;
	uint64_t freed = 0;
	int error;

	*freedp = 0;
	if (hmp->flush_error)
		return hammer2_seterr(hmp->flush_error, "%s: bulkfree after a "
				      "failed flush", hmp->path);
	if ((error = hammer2_blockmap_build(hmp, hmp->volhdrno, &bm)) != 0)
		return error;
	/* blocks only the unread part of the tree references would be freed */
	if (bm.unread) {
		size_t unread = bm.unread;

		hammer2_blockmap_free(&bm);
		return hammer2_preerr(EIO, "%s: bulkfree: %zu blocks of the tree "
				      "unreadable, nothing freed", hmp->path,
				      unread);
	}
	for (size_t l = 0; l < bm.nleaves && error == 0; ++l) {
		hammer2_off_t base = bm.leaves[l].base;
		hammer2_chain_t *leaf;

		error = hammer2_freemap_leaf(hmp, base, 0, &leaf);
		if (error)
			break;
		for (int j = 0; j < (int)(L1_BYTES / L0_BYTES); ++j)
			freed += free_segment(hmp, &bm, &leaf->data->bmdata[j],
					      base + (hammer2_off_t)j * L0_BYTES);
		hammer2_chain_unlock(leaf);
		hammer2_chain_drop(leaf);
	}
	hammer2_blockmap_free(&bm);
	/* leaves freed before a failing one stay freed: count them */
	hmp->voldata->allocator_free += freed;
	if (error == 0)
		hmp->voldata->bulkfree_tid = hmp->voldata->mirror_tid;
	hmp->room_tid = 0;	/* the room kept is short now */
	hmp->vchain->flags |= HAMMER2_CHAIN_MODIFIED;	/* a new header */
	*freedp = freed;
	return error;
}

/*
 * Commit, free, commit.  A commit refused for room wrote nothing: what
 * is pending goes out with the freemap once there is room for it.
 */
int
hammer2_bulkfree(hammer2_dev_t *hmp, uint64_t *freedp)
{
	int error;

	*freedp = 0;
	error = hammer2_flush(hmp);
	if (error && !(error == ENOSPC && hmp->flush_error == 0))
		return error;
	if ((error = hammer2_bulkfree_scan(hmp, freedp)) != 0)
		return error;
	return hammer2_flush(hmp);
}
