/*
 * Freemap: block allocation in the real HAMMER2 layout.
 *
 * Each 1 GiB of the volume has a level-1 FREEMAP_LEAF (32 KiB, keybits
 * 30): 256 bmap_data entries, one per 4 MiB segment, each with 2 bits per
 * 16 KiB block (00 free, 11 allocated), an avail byte count, a class
 * ((blockref type << 8) | 16, so like blocks cluster together) and a
 * linear offset for packing allocations smaller than 16 KiB.  Leaves hang
 * off the volume header's freemap blockset, through FREEMAP_NODEs (keybits
 * 38, 46, ...) when more than four are needed.
 *
 * Freemap blocks are never allocated from the freemap: they live in the
 * reserved 4 MiB segment at the start of the 1 GiB zone they describe, in
 * one of 8 rotating sets of 5 levels, and each rewrite moves to the next
 * set so the copies the last volume headers reference stay intact.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

#define L1_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX)
#define L0_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL0_RADIX)
#define FM_BLOCK	((hammer2_off_t)HAMMER2_FREEMAP_BLOCK_SIZE)
#define BLOCKS_PER_SEG	(L0_BYTES / FM_BLOCK)		/* 256 */
#define SEGS_PER_LEAF	(L1_BYTES / L0_BYTES)		/* 256 */
#define LEAF_RADIX	15				/* 32 KiB */

struct hammer2_freemap {
	hammer2_off_t	hint[8];	/* next try, per blockref type */
};

static int
block_state(const hammer2_bmap_data_t *bmap, int i)
{
	return (int)((bmap->bitmapq[i / 32] >> ((i % 32) * 2)) & 3);
}

static void
block_set(hammer2_bmap_data_t *bmap, int i, int state)
{
	int shift = (i % 32) * 2;

	bmap->bitmapq[i / 32] = (bmap->bitmapq[i / 32] & ~(3ULL << shift)) |
				((uint64_t)state << shift);
}

/*
 * A new leaf starts with every 4 MiB segment outside [lokey, hikey)
 * fully allocated: below allocator_beg (rounded up to 4 MiB: reserved
 * segment, boot and aux areas, newfs's inodes), each 1 GiB's reserved
 * first 4 MiB, and past the end of the volume.  The leaf's avail hint is
 * set here once, as the kernel does.
 */
/*
 * Whether a leaf starts the 4 MiB segment at `seg` free: not below
 * allocator_beg (rounded up to 4 MiB: reserved segment, boot and aux
 * areas, newfs's inodes), not its 1 GiB's reserved first segment, not
 * past the end of the volume.
 */
static int
seg_initially_free(hammer2_dev_t *hmp, hammer2_off_t seg)
{
	hammer2_off_t l1base = seg & ~(L1_BYTES - 1);
	hammer2_off_t lokey, hikey;

	lokey = (hmp->voldata->allocator_beg + L0_BYTES - 1) & ~(L0_BYTES - 1);
	if (lokey < l1base + L0_BYTES)
		lokey = l1base + L0_BYTES;
	hikey = l1base + L1_BYTES;
	if (hikey > hmp->total_size)
		hikey = hmp->total_size & ~(L0_BYTES - 1);
	return seg >= lokey && seg < hikey;
}

/*
 * A new leaf starts with every segment that is not initially free fully
 * allocated.  The leaf's avail hint is set here once, as the kernel does.
 */
static void
leaf_init(hammer2_dev_t *hmp, hammer2_off_t l1base, hammer2_chain_t *leaf)
{
	uint64_t avail = L1_BYTES;

	for (int j = 0; j < (int)SEGS_PER_LEAF; ++j) {
		hammer2_bmap_data_t *bmap = &leaf->data->bmdata[j];

		if (seg_initially_free(hmp, l1base + (hammer2_off_t)j * L0_BYTES)) {
			bmap->avail = (uint32_t)L0_BYTES;
			continue;
		}
		memset(bmap->bitmapq, 0xFF, sizeof(bmap->bitmapq));
		bmap->linear = (int32_t)L0_BYTES;
		avail -= L0_BYTES;
	}
	leaf->bref.check.freemap.bigmask = 0xFFFFFFFFU;
	leaf->bref.check.freemap.avail = avail;
}

/*
 * Look up the leaf for the 1 GiB zone at l1base under *parentp (locked):
 * the leaf locked, ENOENT if there is none, EINVAL if the element there
 * is not a leaf.
 */
static int
leaf_lookup(hammer2_chain_t **parentp, hammer2_off_t l1base, int flags,
	    hammer2_chain_t **leafp)
{
	hammer2_chain_t *leaf;
	hammer2_key_t next;
	int error;

	leaf = hammer2_chain_lookup(parentp, &next, l1base, l1base, &error, flags);
	if (leaf && (leaf->bref.type != HAMMER2_BREF_TYPE_FREEMAP_LEAF ||
		     leaf->bytes != HAMMER2_FREEMAP_LEVELN_PSIZE))
		error = hammer2_seterr(EINVAL, "freemap element at 0x%llx "
				       "is not a 32 KiB leaf",
				       (unsigned long long)l1base);
	else if (leaf == NULL && error == 0)
		error = ENOENT;
	*leafp = leaf;
	return error;
}

/*
 * The leaf for the 1 GiB zone at l1base, modified (so the caller may
 * change it) and locked; created if absent and `create` is set, else
 * ENOENT.
 */
int
hammer2_freemap_leaf(hammer2_dev_t *hmp, hammer2_off_t l1base, int create,
		     hammer2_chain_t **leafp)
{
	hammer2_chain_t *parent = hmp->fchain;
	hammer2_chain_t *leaf;
	int error;

	hammer2_chain_ref(parent);
	hammer2_chain_lock(parent, 0);
	error = leaf_lookup(&parent, l1base, 0, &leaf);
	if (error == ENOENT && create) {
		error = hammer2_chain_create(&parent, &leaf, l1base,
					     HAMMER2_FREEMAP_LEVEL1_RADIX,
					     HAMMER2_BREF_TYPE_FREEMAP_LEAF,
					     HAMMER2_FREEMAP_LEVELN_PSIZE,
					     hmp->mtid);
		if (error == 0)
			leaf_init(hmp, l1base, leaf);
	} else if (error == 0) {
		error = hammer2_chain_modify(leaf, hmp->mtid);
	}
	hammer2_chain_unlock(parent);
	hammer2_chain_drop(parent);
	if (error && leaf) {
		hammer2_chain_unlock(leaf);
		hammer2_chain_drop(leaf);
		leaf = NULL;
	}
	*leafp = leaf;
	return error;
}

/*
 * Allocate 2^radix bytes in one 4 MiB segment.  Pieces under 16 KiB are
 * packed into a 16 KiB block through bmap->linear; larger ones take
 * size-aligned runs of free 16 KiB blocks.  Returns the offset within the
 * segment or -1.
 */
static int64_t
bmap_alloc(hammer2_bmap_data_t *bmap, int radix)
{
	int64_t bytes = 1LL << radix;
	int n = bytes >= (int64_t)FM_BLOCK ? (int)(bytes / (int64_t)FM_BLOCK) : 1;

	if (bytes < (int64_t)FM_BLOCK && (bmap->linear & (FM_BLOCK - 1))) {
		int64_t at = (bmap->linear + bytes - 1) & ~(bytes - 1);

		if ((at & ~(int64_t)(FM_BLOCK - 1)) ==
		    (bmap->linear & ~(int64_t)(FM_BLOCK - 1)) &&
		    at + bytes <= (int64_t)L0_BYTES &&
		    block_state(bmap, (int)(at / (int64_t)FM_BLOCK)) == 3) {
			bmap->linear = (int32_t)(at + bytes);
			return at;
		}
	}
	for (int i = 0; i + n <= (int)BLOCKS_PER_SEG; i += n) {
		int k;

		for (k = 0; k < n && block_state(bmap, i + k) == 0; ++k)
			;
		if (k < n)
			continue;
		for (k = 0; k < n; ++k)
			block_set(bmap, i + k, 3);
		bmap->avail -= (uint32_t)(n * FM_BLOCK);
		if (bytes < (int64_t)FM_BLOCK)
			bmap->linear = (int32_t)((int64_t)i * (int64_t)FM_BLOCK + bytes);
		return (int64_t)i * (int64_t)FM_BLOCK;
	}
	return -1;
}

/*
 * Try every segment of one leaf, from the hint, whose class matches (or
 * any segment with room: a segment keeps its class when another type
 * takes a block of it).
 */
static int
leaf_alloc(hammer2_dev_t *hmp, hammer2_chain_t *leaf, hammer2_off_t l1base,
	   hammer2_off_t from, int type, int radix, int any_class,
	   hammer2_off_t *offp)
{
	uint16_t class = (uint16_t)((type << 8) | HAMMER2_PBUFRADIX);
	int first = from > l1base ? (int)((from - l1base) / L0_BYTES) : 0;

	for (int j = first; j < (int)SEGS_PER_LEAF; ++j) {
		hammer2_bmap_data_t *bmap = &leaf->data->bmdata[j];
		uint32_t before = bmap->avail;
		int64_t rel;

		if (l1base + (hammer2_off_t)j * L0_BYTES >= hmp->total_size)
			break;
		if (!any_class && bmap->class != 0 && bmap->class != class)
			continue;
		if (bmap->avail == 0 && (radix >= HAMMER2_FREEMAP_BLOCK_RADIX ||
					 !(bmap->linear & (FM_BLOCK - 1))))
			continue;	/* full */
		rel = bmap_alloc(bmap, radix);
		if (rel < 0)
			continue;
		if (bmap->class == 0)
			bmap->class = class;
		hmp->voldata->allocator_free -= before - bmap->avail;
		*offp = l1base + (hammer2_off_t)j * L0_BYTES + (hammer2_off_t)rel;
		return 0;
	}
	return ENOSPC;
}

/*
 * Allocate `bytes` (rounded to a power of two, 1..64 KiB) for a block of
 * the given type.  Runs inside the flush, which owns the device.
 */
int
hammer2_freemap_alloc(hammer2_dev_t *hmp, int type, size_t bytes,
		      hammer2_off_t *offp)
{
	hammer2_off_t end = hmp->total_size;
	int radix = hammer2_alloc_radix(bytes);
	hammer2_off_t start, l1;
	int error;

	if (radix > HAMMER2_RADIX_MAX)
		return hammer2_seterr(EINVAL, "allocation of %zu bytes", bytes);
	if (end > hmp->size)
		end = hmp->size;
	if (hmp->freemap == NULL &&
	    (hmp->freemap = calloc(1, sizeof(*hmp->freemap))) == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	start = hmp->freemap->hint[type & 7];
	if (start < hmp->voldata->allocator_beg || start >= end)
		start = hmp->voldata->allocator_beg;
	/*
	 * From the hint's zone to the end, then wrap around once; then, the
	 * volume nearly full, into segments other block types hold, so that
	 * all the space the allocator counts free can be reached.
	 */
	for (int pass = 0; pass < 3; ++pass) {
		hammer2_off_t from = pass ? 0 : start;
		hammer2_off_t stop = pass == 1 ? start + L1_BYTES : end;

		for (l1 = from & ~(L1_BYTES - 1); l1 < end && l1 < stop;
		     l1 += L1_BYTES) {
			hammer2_chain_t *leaf;

			error = hammer2_freemap_leaf(hmp, l1, 1, &leaf);
			if (error)
				return error;
			error = leaf_alloc(hmp, leaf, l1, pass ? l1 : from, type,
					   radix, pass == 2, offp);
			hammer2_chain_unlock(leaf);
			hammer2_chain_drop(leaf);
			if (error == 0) {
				hmp->freemap->hint[type & 7] = *offp;
				return 0;
			}
		}
	}
	return hammer2_seterr(ENOSPC, "%s: no free space for %zu bytes",
			      hmp->path, (size_t)1 << radix);
}

/* 64 KiB runs (4 blocks: one byte of the bitmap) free in a segment. */
static int
seg_free_runs(const hammer2_bmap_data_t *bmap)
{
	const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
	int n = 0;

	for (int w = 0; w < HAMMER2_BMAP_ELEMENTS; ++w) {
		uint64_t x = bmap->bitmapq[w];

		/* the top bit of each byte that is zero */
		n += __builtin_popcountll(~(((x & low7) + low7) | x | low7));
	}
	return n;
}

/*
 * Bytes in free 64 KiB runs: what blocks of any size can surely be
 * placed in (the allocator's own count includes scattered 16 KiB pieces
 * a 64 KiB block cannot use).  Zones without a leaf yet are as a new
 * leaf would start them.  With a leaf unreadable it is the allocator's
 * count, uncached: the allocation itself will meet the error.  Kept per
 * commit (room_tid 0: count anew, as after a bulkfree); `recount` counts
 * anew.
 */
uint64_t
hammer2_freemap_room(hammer2_dev_t *hmp, int recount)
{
	hammer2_off_t end = hmp->total_size;
	hammer2_chain_t *parent, *leaf;
	uint64_t runs = 0;
	int unread = 0;

	if (!recount && hmp->room_tid != 0 &&
	    hmp->room_tid == hmp->voldata->mirror_tid)
		return hmp->room;
	if (end > hmp->size)
		end = hmp->size;
	parent = hmp->fchain;
	hammer2_chain_ref(parent);
	hammer2_chain_lock(parent, HAMMER2_RESOLVE_SHARED);
	for (hammer2_off_t l1 = 0; l1 < end; l1 += L1_BYTES) {
		int error = leaf_lookup(&parent, l1, HAMMER2_LOOKUP_SHARED, &leaf);

		unread |= error != 0 && error != ENOENT;
		for (int j = 0; j < (int)SEGS_PER_LEAF; ++j) {
			hammer2_off_t seg = l1 + (hammer2_off_t)j * L0_BYTES;

			if (seg + L0_BYTES > end)
				break;
			if (error == 0)
				runs += seg_free_runs(&leaf->data->bmdata[j]);
			else if (error == ENOENT && seg_initially_free(hmp, seg))
				runs += L0_BYTES / HAMMER2_PBUFSIZE;
		}
		if (leaf) {
			hammer2_chain_unlock(leaf);
			hammer2_chain_drop(leaf);
		}
	}
	hammer2_chain_unlock(parent);
	hammer2_chain_drop(parent);
	if (unread)
		return hmp->voldata->allocator_free;
	hmp->room = runs * HAMMER2_PBUFSIZE;
	hmp->room_tid = hmp->voldata->mirror_tid;
	return hmp->room;
}

/* Freemap blocks: the next rotation slot in their zone's reserved area. */
static hammer2_off_t
freemap_reserve(hammer2_chain_t *chain)
{
	hammer2_off_t zone = chain->bref.key & ~(L1_BYTES - 1);
	int level = (chain->bref.keybits - HAMMER2_FREEMAP_LEVEL1_RADIX) / 8;
	int set = 0;

	if (chain->bref.data_off) {
		hammer2_off_t cur = chain->bref.data_off & HAMMER2_OFF_MASK;
		int blk = (int)((cur - zone) / HAMMER2_PBUFSIZE);

		set = ((blk - HAMMER2_ZONE_FREEMAP_00) / HAMMER2_ZONE_FREEMAP_INC + 1) %
		      HAMMER2_NFREEMAPS;
	}
	return zone + (hammer2_off_t)(HAMMER2_ZONE_FREEMAP_00 +
				      set * HAMMER2_ZONE_FREEMAP_INC + level) *
		      HAMMER2_PBUFSIZE;
}

/* A node's avail hint: what its children's hints add up to. */
static uint64_t
node_avail(hammer2_chain_t *chain)
{
	hammer2_blockref_t *base;
	uint64_t avail = 0;
	int count;

	base = hammer2_chain_base(chain, &count);
	for (int i = 0; i < count; ++i)
		if (base[i].type != HAMMER2_BREF_TYPE_EMPTY)
			avail += base[i].check.freemap.avail;
	return avail;
}

static int
freemap_flush_chain(hammer2_chain_t *chain, hammer2_tid_t tid)
{
	hammer2_chain_t **kids;
	hammer2_off_t off;
	int n, error = 0;

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
	for (int i = 0; i < n; ++i) {
		if (error == 0 && (kids[i]->flags & HAMMER2_CHAIN_MODIFIED))
			error = freemap_flush_chain(kids[i], tid);
		hammer2_chain_drop(kids[i]);
	}
	free(kids);
	if (error || chain->bref.type == HAMMER2_BREF_TYPE_FREEMAP)
		return error;
	off = freemap_reserve(chain);
	chain->bref.data_off = off | LEAF_RADIX;
	chain->bref.methods = HAMMER2_ENC_CHECK(HAMMER2_CHECK_FREEMAP);
	chain->bref.mirror_tid = tid;
	chain->bref.check.freemap.icrc32 = hammer2_icrc32(chain->data, chain->bytes);
	if (chain->bref.type == HAMMER2_BREF_TYPE_FREEMAP_NODE) {
		chain->bref.check.freemap.bigmask = 0xFFFFFFFFU;
		chain->bref.check.freemap.avail = node_avail(chain);
	}
	error = hammer2_io_write(chain->hmp, off, chain->data, (int)chain->bytes);
	if (error == 0)
		error = hammer2_chain_base_update(chain->parent, &chain->bref);
	if (error == 0)
		hammer2_chain_clear_modified(chain);
	return error;
}

int
hammer2_freemap_flush(hammer2_dev_t *hmp, hammer2_tid_t tid)
{
	if (!(hmp->fchain->flags & HAMMER2_CHAIN_MODIFIED))
		return 0;
	return freemap_flush_chain(hmp->fchain, tid);
}

void
hammer2_freemap_destroy(hammer2_dev_t *hmp)
{
	free(hmp->freemap);
	hmp->freemap = NULL;
}
