/*
 * Freemap consistency, as fsck sees it: every block the volume tree of a
 * header copy references must be marked allocated in that copy's
 * freemap, no two different blocks may share bytes, and allocated space
 * no block uses (what a bulkfree would reclaim) is counted as leaked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

#define L1_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX)
#define L0_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL0_RADIX)
#define GRANULE		((hammer2_off_t)HAMMER2_FREEMAP_BLOCK_SIZE)

struct extent {
	hammer2_off_t	off;
	hammer2_off_t	bytes;
};

struct leaf {
	hammer2_off_t		base;
	hammer2_bmap_data_t	bmap[HAMMER2_FREEMAP_LEVELN_PSIZE /
				     sizeof(hammer2_bmap_data_t)];
};

struct scan {
	struct extent	*ext;
	size_t		next, maxext;
	struct leaf	*leaves;
	size_t		nleaves, maxleaves;
	int		oom;
};

static int
collect_extent(void *arg, int depth, const hammer2_blockref_t *bref,
	       const void *data, int bytes, int error)
{
	struct scan *s = arg;

	(void)depth, (void)data, (void)error;
	if (bytes <= 0 || bref->type == HAMMER2_BREF_TYPE_VOLUME)
		return 0;
	if (s->next == s->maxext) {
		size_t n = s->maxext ? s->maxext * 2 : 1024;
		struct extent *p = realloc(s->ext, n * sizeof(*p));

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

static int
collect_leaf(void *arg, int depth, const hammer2_blockref_t *bref,
	     const void *data, int bytes, int error)
{
	struct scan *s = arg;

	(void)depth, (void)error;
	if (bref->type != HAMMER2_BREF_TYPE_FREEMAP_LEAF || data == NULL ||
	    bytes != HAMMER2_FREEMAP_LEVELN_PSIZE)
		return 0;
	if (s->nleaves == s->maxleaves) {
		size_t n = s->maxleaves ? s->maxleaves * 2 : 8;
		struct leaf *p = realloc(s->leaves, n * sizeof(*p));

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
	const struct extent *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->bytes < y->bytes ? -1 : x->bytes > y->bytes;
}

/* 2-bit state of the 16 KiB granule holding off (0 = free / no leaf). */
static int
granule_state(struct scan *s, hammer2_off_t off)
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

/* Whether any extent overlaps [off, off + len) (extents sorted). */
static int
covered(struct scan *s, hammer2_off_t off, hammer2_off_t len)
{
	size_t lo = 0, hi = s->next;

	while (lo < hi) {		/* first extent ending after off */
		size_t mid = (lo + hi) / 2;

		if (s->ext[mid].off + s->ext[mid].bytes <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* extents are at most 64 KiB, so look a little back as well */
	for (size_t i = lo > 4 ? lo - 4 : 0; i < s->next && s->ext[i].off < off + len;
	     ++i)
		if (s->ext[i].off + s->ext[i].bytes > off)
			return 1;
	return 0;
}

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
	hammer2_walk_stats_t vs = { 0 }, fs = { 0 };
	hammer2_volume_data_t *vd = hmp->voldata;
	hammer2_off_t lokey;
	struct scan s = { 0 };
	size_t n = 0;
	int error;

	error = hammer2_walk_zone(hmp, zone, 0, collect_extent, &s, &vs);
	if (error == 0 || error == EIO)
		error = hammer2_walk_zone(hmp, zone, 1, collect_leaf, &s, &fs);
	if (s.oom)
		error = hammer2_seterr(ENOMEM, "out of memory");
	if (error && error != EIO)
		goto out;
	error = 0;
	qsort(s.ext, s.next, sizeof(*s.ext), cmp_extent);
	for (size_t i = 0; i < s.next; ++i)	/* shared blocks count once */
		if (n == 0 || s.ext[i].off != s.ext[n - 1].off ||
		    s.ext[i].bytes != s.ext[n - 1].bytes)
			s.ext[n++] = s.ext[i];
	s.next = n;
	r->referenced = n;
	for (size_t i = 0; i < n; ++i) {
		struct extent *e = &s.ext[i];

		if (i > 0 && s.ext[i - 1].off + s.ext[i - 1].bytes > e->off) {
			++r->overlaps;
			report(r, "blocks at 0x%llx and 0x%llx overlap",
			       (unsigned long long)s.ext[i - 1].off,
			       (unsigned long long)e->off);
		}
		for (hammer2_off_t g = e->off & ~(GRANULE - 1); g < e->off + e->bytes;
		     g += GRANULE) {
			if (granule_state(&s, g) == 0) {
				++r->unmarked;
				report(r, "block at 0x%llx (%llu bytes) is marked "
				       "free in the freemap",
				       (unsigned long long)e->off,
				       (unsigned long long)e->bytes);
				break;
			}
		}
	}
	/* allocated granules nothing uses, outside the pre-reserved areas */
	lokey = (vd->allocator_beg + L0_BYTES - 1) & ~(L0_BYTES - 1);
	for (size_t l = 0; l < s.nleaves; ++l) {
		for (hammer2_off_t g = s.leaves[l].base;
		     g < s.leaves[l].base + L1_BYTES; g += GRANULE) {
			int st;

			if (g < lokey || (g & (L1_BYTES - 1)) < L0_BYTES ||
			    g + GRANULE > vd->volu_size)
				continue;
			st = granule_state(&s, g);
			if (st == 0)
				continue;
			r->allocated_bytes += GRANULE;
			if (!covered(&s, g, GRANULE))
				r->leaked_bytes += GRANULE;
		}
	}
out:
	free(s.ext);
	free(s.leaves);
	return error;
}
