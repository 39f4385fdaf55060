/*
 * Freemap consistency, as fsck sees it: every block the volume tree of a
 * header copy references must be marked allocated in that copy's
 * freemap, no two different blocks may share bytes, and allocated space
 * no block uses (what a bulkfree would reclaim) is counted as leaked.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
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

int
hammer2_fsck_freemap(hammer2_dev_t *hmp, int zone, hammer2_fsck_freemap_t *r)
{
	hammer2_blockmap_t bm;
	int error;

	error = hammer2_blockmap_build(hmp, zone, &bm);
	if (error)
		return error;
	r->referenced = bm.next;
	for (size_t i = 0; i < bm.next; ++i) {
		hammer2_extent_t *e = &bm.ext[i];

		if (i > 0 && bm.ext[i - 1].off + bm.ext[i - 1].bytes > e->off) {
			++r->overlaps;
			report(r, "blocks at 0x%llx and 0x%llx overlap",
			       (unsigned long long)bm.ext[i - 1].off,
			       (unsigned long long)e->off);
		}
		for (hammer2_off_t g = e->off & ~(GRANULE - 1); g < e->off + e->bytes;
		     g += GRANULE) {
			/* reserved space is allocated with or without a leaf */
			if (!hammer2_blockmap_reserved(hmp, g) &&
			    hammer2_blockmap_state(&bm, g) == 0) {
				++r->unmarked;
				report(r, "block at 0x%llx (%llu bytes) is marked "
				       "free in the freemap",
				       (unsigned long long)e->off,
				       (unsigned long long)e->bytes);
				break;
			}
		}
	}
	for (size_t l = 0; l < bm.nleaves; ++l) {
		for (hammer2_off_t g = bm.leaves[l].base;
		     g < bm.leaves[l].base + L1_BYTES; g += GRANULE) {
			if (hammer2_blockmap_reserved(hmp, g) ||
			    hammer2_blockmap_state(&bm, g) == 0)
				continue;
			r->allocated_bytes += GRANULE;
			if (!hammer2_blockmap_covered(&bm, g, GRANULE))
				r->leaked_bytes += GRANULE;
		}
	}
	hammer2_blockmap_free(&bm);
	return 0;
}
