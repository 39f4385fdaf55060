/*
 * Block maps: every block a header copy's volume tree references (sorted,
 * each once however many snapshots share it) beside a copy of that
 * copy's freemap leaves.  fsck compares the two; bulkfree frees what
 * the tree no longer uses.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

#define L1_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX)
#define L0_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL0_RADIX)
#define GRANULE		((hammer2_off_t)HAMMER2_FREEMAP_BLOCK_SIZE)

/* Walk callback of a volume tree: record the block (arg: the map). */
int
hammer2_blockmap_extent(void *arg, int depth, const hammer2_blockref_t *bref,
			const void *data, int bytes, int error)
{
	hammer2_blockmap_t *s = arg;

	(void)depth, (void)data;
	/* what an unreadable block references is missing from the map */
	if (error && bref->type != HAMMER2_BREF_TYPE_DATA &&
	    bref->type != HAMMER2_BREF_TYPE_DIRENT)
		++s->unread;
	if (bytes <= 0 || bref->type == HAMMER2_BREF_TYPE_VOLUME)
		return 0;
	if (s->next == s->maxext) {
		size_t n = s->maxext ? s->maxext * 2 : 1024;
		hammer2_extent_t *p = realloc(s->ext, n * sizeof(*p));

		if (p == NULL) {
			s->oom = 1;
			return 1;
		}
		s->ext = p;
		s->maxext = n;
	}
	s->ext[s->next].off = bref->data_off & HAMMER2_OFF_MASK;
	s->ext[s->next].bytes = (hammer2_off_t)bytes;
	++s->next;
	return 0;
}

/* Walk callback of a freemap tree: copy the leaf (arg: the map). */
int
hammer2_blockmap_leaf(void *arg, int depth, const hammer2_blockref_t *bref,
		      const void *data, int bytes, int error)
{
	hammer2_blockmap_t *s = arg;

	(void)depth, (void)error;
	if (bref->type != HAMMER2_BREF_TYPE_FREEMAP_LEAF || data == NULL ||
	    bytes != HAMMER2_FREEMAP_LEVELN_PSIZE)
		return 0;
	if (s->nleaves == s->maxleaves) {
		size_t n = s->maxleaves ? s->maxleaves * 2 : 8;
		hammer2_leafcopy_t *p = realloc(s->leaves, n * sizeof(*p));

		if (p == NULL) {
			s->oom = 1;
			return 1;
		}
		s->leaves = p;
		s->maxleaves = n;
	}
	s->leaves[s->nleaves].base = bref->key & ~(L1_BYTES - 1);
	memcpy(s->leaves[s->nleaves].bmap, data, HAMMER2_FREEMAP_LEVELN_PSIZE);
	++s->nleaves;
	return 0;
}

static int
cmp_extent(const void *a, const void *b)
{
	const hammer2_extent_t *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->bytes < y->bytes ? -1 : x->bytes > y->bytes;
}

static int
walk_partial(int error, const hammer2_walk_stats_t *stats)
{
	return error == EIO && stats->errors > 0;
}

/*
 * Sort the blocks both walks recorded, each once.  A walk that failed in
 * some blocks of its tree (each counted in its stats) still mapped the
 * rest; one that failed with none counted (its header) maps nothing.
 */
int
hammer2_blockmap_finish(hammer2_blockmap_t *s, int error,
			const hammer2_walk_stats_t *stats)
{
	size_t n = 0;

	if (s->oom)
		error = hammer2_seterr(ENOMEM, "out of memory");
	if (error && !walk_partial(error, stats))
		return error;
	if (s->next > 0)	/* an empty walk left ext NULL, which qsort refuses */
		qsort(s->ext, s->next, sizeof(*s->ext), cmp_extent);
	for (size_t i = 0; i < s->next; ++i)	/* shared blocks count once */
		if (n == 0 || s->ext[i].off != s->ext[n - 1].off ||
		    s->ext[i].bytes != s->ext[n - 1].bytes)
			s->ext[n++] = s->ext[i];
	s->next = n;
	return 0;
}

/*
 * Build the map for header copy `zone`.  Blocks that fail to read or
 * verify are still recorded (their parents reference them); fsck reports
 * those through its own walk.  What they reference is not: s->unread
 * counts them.
 */
int
hammer2_blockmap_build(hammer2_dev_t *hmp, int zone, hammer2_blockmap_t *s)
{
	hammer2_walk_stats_t vs = { 0 }, fs = { 0 };
	int error;

	memset(s, 0, sizeof(*s));
	error = hammer2_walk_zone(hmp, zone, 0, hammer2_blockmap_extent, s, &vs);
	if (error == 0 || walk_partial(error, &vs))
		error = hammer2_walk_zone(hmp, zone, 1, hammer2_blockmap_leaf, s,
					  &fs);
	error = hammer2_blockmap_finish(s, error, &fs);
	if (error)
		hammer2_blockmap_free(s);
	return error;
}

void
hammer2_blockmap_free(hammer2_blockmap_t *s)
{
	free(s->ext);
	free(s->leaves);
	memset(s, 0, sizeof(*s));
}

/* 2-bit freemap state of the 16 KiB granule holding off (0: free/none). */
int
hammer2_blockmap_state(const hammer2_blockmap_t *s, hammer2_off_t off)
{
	hammer2_off_t base = off & ~(L1_BYTES - 1);

	for (size_t i = 0; i < s->nleaves; ++i) {
		if (s->leaves[i].base == base) {
			const hammer2_bmap_data_t *bm =
				&s->leaves[i].bmap[(off - base) / L0_BYTES];
			int g = (int)((off & (L0_BYTES - 1)) / GRANULE);

			return (int)((bm->bitmapq[g / 32] >> ((g % 32) * 2)) & 3);
		}
	}
	return 0;
}

/* Whether any referenced block overlaps [off, off + len). */
int
hammer2_blockmap_covered(const hammer2_blockmap_t *s, hammer2_off_t off,
			 hammer2_off_t len)
{
	size_t lo = 0, hi = s->next;

	while (lo < hi) {		/* first extent ending after off */
		size_t mid = (lo + hi) / 2;

		if (s->ext[mid].off + s->ext[mid].bytes <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* blocks are at most 64 KiB: a few steps back cover any overlap */
	for (size_t i = lo > 4 ? lo - 4 : 0; i < s->next && s->ext[i].off < off + len;
	     ++i)
		if (s->ext[i].off + s->ext[i].bytes > off)
			return 1;
	return 0;
}

/*
 * Granules allocated from the start and never handed out: below
 * allocator_beg (rounded to 4 MiB), each 1 GiB's reserved 4 MiB, and past
 * the end of the volume.
 */
int
hammer2_blockmap_reserved(hammer2_dev_t *hmp, hammer2_off_t g)
{
	hammer2_off_t lokey = (hmp->voldata->allocator_beg + L0_BYTES - 1) &
			      ~(L0_BYTES - 1);

	return g < lokey || (g & (L1_BYTES - 1)) < L0_BYTES ||
	       g + GRANULE > hmp->total_size;
}
