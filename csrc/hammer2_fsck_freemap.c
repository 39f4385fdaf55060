/*
 * Freemap consistency, as fsck sees it: every block the volume tree of a
 * header copy references must be marked allocated in that copy's
 * freemap, no two different blocks may share bytes, and allocated space
 * no block uses (what a bulkfree would reclaim) is counted as leaked.
 */
#include <stdio.h>
#include "hammer2.h"

#define L1_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX)
#define L0_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL0_RADIX)
#define GRANULE		((hammer2_off_t)HAMMER2_FREEMAP_BLOCK_SIZE)

static void
report(hammer2_fsck_freemap_t *r, const char *fmt, unsigned long long a,
       unsigned long long b)
{
	if (r->report && r->nreported < 1000) {
		char msg[160];

		snprintf(msg, sizeof(msg), fmt, a, b);
		r->report(r->arg, msg);
		++r->nreported;
	}
}

/* Whether no granule of the 4 MiB the entry maps is allocated. */
static int
bmap_empty(const hammer2_bmap_data_t *bm)
{
	for (int i = 0; i < HAMMER2_BMAP_ELEMENTS; ++i)
		if (bm->bitmapq[i])
			return 0;
	return 1;
}

/*
 * Allocated and leaked space of one leaf's 1 GiB, its state read per
 * 4 MiB entry (a per-granule hammer2_blockmap_state lookup was most of
 * fsck's freemap time).
 */
static void
leaf_usage(hammer2_dev_t *hmp, const hammer2_blockmap_t *bm,
	   const hammer2_leafcopy_t *leaf, hammer2_fsck_freemap_t *r)
{
	for (hammer2_off_t l0 = 0; l0 < L1_BYTES / L0_BYTES; ++l0) {
		const hammer2_bmap_data_t *bmd = &leaf->bmap[l0];
		hammer2_off_t base = leaf->base + l0 * L0_BYTES;

		/*
		 * Nothing to count: an empty entry, or one reserved from its
		 * first granule on (below allocator_beg, a 1 GiB's first
		 * 4 MiB, past the end: each holds to the entry's end).
		 */
		if (bmap_empty(bmd) || hammer2_blockmap_reserved(hmp, base))
			continue;
		for (int g = 0; g < (int)(L0_BYTES / GRANULE); ++g) {
			hammer2_off_t off = base + (hammer2_off_t)g * GRANULE;

			if (hammer2_blockmap_reserved(hmp, off) ||
			    ((bmd->bitmapq[g / 32] >> ((g % 32) * 2)) & 3) == 0)
				continue;
			r->allocated_bytes += GRANULE;
			if (!hammer2_blockmap_covered(bm, off, GRANULE))
				r->leaked_bytes += GRANULE;
		}
	}
}

/* Compare the blocks of bm (built for one header copy) with its freemap. */
void
hammer2_fsck_freemap(hammer2_dev_t *hmp, const hammer2_blockmap_t *bm,
		     hammer2_fsck_freemap_t *r)
{
	r->referenced = bm->next;
	for (size_t i = 0; i < bm->next; ++i) {
		const hammer2_extent_t *e = &bm->ext[i];

		if (i > 0 && bm->ext[i - 1].off + bm->ext[i - 1].bytes > e->off) {
			++r->overlaps;
			report(r, "blocks at 0x%llx and 0x%llx overlap",
			       (unsigned long long)bm->ext[i - 1].off,
			       (unsigned long long)e->off);
		}
		for (hammer2_off_t g = e->off & ~(GRANULE - 1); g < e->off + e->bytes;
		     g += GRANULE) {
			/* reserved space is allocated with or without a leaf */
			if (!hammer2_blockmap_reserved(hmp, g) &&
			    hammer2_blockmap_state(bm, g) == 0) {
				++r->unmarked;
				report(r, "block at 0x%llx (%llu bytes) is marked "
				       "free in the freemap",
				       (unsigned long long)e->off,
				       (unsigned long long)e->bytes);
				break;
			}
		}
	}
	for (size_t l = 0; l < bm->nleaves; ++l) {
		size_t f = 0;

		/* a duplicated leaf counts again, read as the first copy */
		while (bm->leaves[f].base != bm->leaves[l].base)
			++f;
		leaf_usage(hmp, bm, &bm->leaves[f], r);
	}
}
