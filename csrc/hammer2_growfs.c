/*
 * growfs: extend a filesystem's last volume into a larger file or device.
 * The space past the old end becomes allocatable: the leaf that covered
 * the old end had those segments pre-allocated and gives them up; further
 * leaves are created on demand.  New header copies come into use as the
 * root volume reaches further 2 GiB zones.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "hammer2.h"
#include "hammer2_backend.h"

#define L1_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX)
#define L0_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL0_RADIX)

static int
release_tail(hammer2_dev_t *hmp, hammer2_off_t oend, hammer2_off_t nend)
{
	hammer2_off_t base = oend & ~(L1_BYTES - 1);
	hammer2_chain_t *leaf;
	int error;

	if (oend == base)
		return 0;		/* the old end closed its leaf */
	error = hammer2_freemap_leaf(hmp, base, 0, &leaf);
	if (error == ENOENT)
		return 0;		/* no leaf yet: created right later */
	if (error)
		return error;
	for (hammer2_off_t seg = oend & ~(L0_BYTES - 1);
	     seg < base + L1_BYTES && seg + L0_BYTES <= nend; seg += L0_BYTES) {
		hammer2_bmap_data_t *bmap = &leaf->data->bmdata[(seg - base) / L0_BYTES];

		memset(bmap->bitmapq, 0, sizeof(bmap->bitmapq));
		bmap->avail = (uint32_t)L0_BYTES;
		bmap->linear = 0;
		bmap->class = 0;
		leaf->bref.check.freemap.avail += L0_BYTES;
	}
	hammer2_chain_unlock(leaf);
	hammer2_chain_drop(leaf);
	return 0;
}

/*
 * Grow the filesystem's last volume (its only one, usually) to `size`
 * bytes.  The root volume's header takes the new sizes at the commit; a
 * last volume of a set first gets its own headers rewritten.
 */
int
hammer2_growfs(hammer2_dev_t *hmp, hammer2_off_t size)
{
	hammer2_volume_data_t *vd = hmp->voldata;
	hammer2_volume_t *v = &hmp->vols[hmp->nvols - 1];
	hammer2_off_t old = v->size, delta;
	int error;

	size &= ~((hammer2_off_t)HAMMER2_VOLUME_ALIGN - 1);
	if (size <= old)
		return hammer2_seterr(EINVAL, "%s: new size %llu is not larger than "
				      "the current %llu", v->path,
				      (unsigned long long)size,
				      (unsigned long long)old);
	if (size > v->devsize) {
		if (v->be->ops->resize == NULL)
			return hammer2_seterr(ENOSPC, "%s: the device holds only %llu "
					      "bytes", v->path,
					      (unsigned long long)v->devsize);
		if ((error = v->be->ops->resize(v->be, size)) != 0)
			return hammer2_preerr(error, "%s: cannot extend to %llu bytes",
					      v->path, (unsigned long long)size);
		v->devsize = size;
		hmp->size = v->offset + size;
	}
	if ((error = hammer2_flush(hmp)) != 0)
		return error;
	if ((error = release_tail(hmp, v->offset + old, v->offset + size)) != 0)
		return error;
	if (hmp->nvols > 1 && (error = hammer2_volset_grow_last(hmp, size)) != 0)
		return error;
	/*
	 * The real growfs counts every added byte as allocatable, the new
	 * zones' reserved segments included (newfs alone subtracts them).
	 */
	delta = size - old;
	v->size = size;
	hmp->total_size += delta;
	if (hmp->nvols == 1)
		vd->volu_size = size;
	vd->total_size += delta;
	vd->allocator_size += delta;
	vd->allocator_free += delta;
	while (hmp->nvolhdrs < HAMMER2_NUM_VOLHDRS &&
	       hammer2_zone_offset(hmp->nvolhdrs) + HAMMER2_ZONE_SEG <=
	       vd->volu_size)
		++hmp->nvolhdrs;
	hmp->vchain->flags |= HAMMER2_CHAIN_MODIFIED;	/* a new header */
	return hammer2_flush(hmp);
}
