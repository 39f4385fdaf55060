/*
 * Whole-tree blockref walk: visits every blockref below a root, reads its
 * media and verifies its check code (always, ignoring the DIO's verified
 * mask, since this is what fsck is for; a block that verified is marked
 * in it, so reads after the walk, as the torture's, do not hash it again).  Counts are per visit, so blocks
 * shared by snapshots count once per reference, like the real fsck.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

struct walk {
	hammer2_dev_t		*hmp;
	hammer2_walk_cb_t	cb;
	void			*arg;
	hammer2_walk_stats_t	*stats;
	int			stop;
};

static void
count(hammer2_walk_stats_t *st, int type)
{
	switch (type) {
	case HAMMER2_BREF_TYPE_INODE:		++st->inode; break;
	case HAMMER2_BREF_TYPE_INDIRECT:	++st->indirect; break;
	case HAMMER2_BREF_TYPE_DATA:		++st->data; break;
	case HAMMER2_BREF_TYPE_DIRENT:		++st->dirent; break;
	case HAMMER2_BREF_TYPE_FREEMAP_NODE:	++st->freemap_node; break;
	case HAMMER2_BREF_TYPE_FREEMAP_LEAF:	++st->freemap_leaf; break;
	default:				return;
	}
	++st->total;
}

/* The child blockrefs a block holds, as the chain layer sees them. */
static const hammer2_blockref_t *
children(const hammer2_blockref_t *bref, const hammer2_media_data_t *data,
	 int bytes, int *countp)
{
	*countp = 0;
	switch (bref->type) {
	case HAMMER2_BREF_TYPE_VOLUME:
		*countp = HAMMER2_SET_COUNT;
		return data->voldata.sroot_blockset.blockref;
	case HAMMER2_BREF_TYPE_FREEMAP:
		*countp = HAMMER2_SET_COUNT;
		return data->voldata.freemap_blockset.blockref;
	case HAMMER2_BREF_TYPE_INODE:
		if (data->ipdata.meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA)
			return NULL;
		*countp = HAMMER2_SET_COUNT;
		return data->ipdata.u.blockset.blockref;
	case HAMMER2_BREF_TYPE_INDIRECT:
	case HAMMER2_BREF_TYPE_FREEMAP_NODE:
		*countp = bytes / (int)sizeof(hammer2_blockref_t);
		return data->npdata;
	default:
		return NULL;
	}
}

static int
walk_load(struct walk *w, const hammer2_blockref_t *bref, hammer2_io_t **diop,
	  const void **datap, int *bytesp)
{
	hammer2_off_t off = bref->data_off & HAMMER2_OFF_MASK;
	int radix = (int)(bref->data_off & HAMMER2_OFF_MASK_RADIX);
	int error;

	*datap = NULL;
	*bytesp = 0;
	if (radix == 0)
		return 0;
	if (radix < HAMMER2_RADIX_MIN || radix > HAMMER2_RADIX_MAX)
		return hammer2_seterr(EINVAL, "invalid size radix %d", radix);
	*bytesp = 1 << radix;
	if (bref->type == HAMMER2_BREF_TYPE_INODE &&
	    *bytesp != HAMMER2_INODE_BYTES)
		return hammer2_seterr(EINVAL, "inode is %d bytes", *bytesp);
	error = hammer2_io_bread(w->hmp, off, *bytesp, diop);
	if (error)
		return error;
	*datap = hammer2_io_data(*diop, off);
	error = hammer2_check_verify(bref, *datap, (size_t)*bytesp);
	if (error == 0)
		hammer2_io_set_verified(*diop, off, *bytesp);
	return error;
}

static int
walk_bref(struct walk *w, const hammer2_blockref_t *bref, int depth,
	  const void *data, int bytes)
{
	const hammer2_blockref_t *base;
	hammer2_io_t *dio = NULL;
	int error = 0;
	int n;

	if (bref->type == HAMMER2_BREF_TYPE_EMPTY)
		return 0;
	count(w->stats, bref->type);
	if (data == NULL) {
		error = walk_load(w, bref, &dio, &data, &bytes);
		if (bytes > 0 && error == 0)
			w->stats->bytes += (uint64_t)bytes;
	}
	if (error == 0 && depth > HAMMER2_CHAIN_DEPTH_MAX)
		error = hammer2_seterr(EINVAL, "tree deeper than %d levels (loop?)",
				       HAMMER2_CHAIN_DEPTH_MAX);
	if (error) {
		++w->stats->errors;
		hammer2_preerr(error, "%s block at 0x%llx (key 0x%llx)",
			       hammer2_bref_type_name(bref->type),
			       (unsigned long long)(bref->data_off &
						    HAMMER2_OFF_MASK),
			       (unsigned long long)bref->key);
	}
	if (w->cb && w->cb(w->arg, depth, bref, error ? NULL : data, bytes,
			   error))
		w->stop = 1;
	if (error == 0 && data && !w->stop) {
		base = children(bref, data, bytes, &n);
		for (int i = 0; i < n && !w->stop; ++i)
			walk_bref(w, &base[i], depth + 1, NULL, 0);
	}
	hammer2_io_putblk(&dio);
	return error;
}

/* Walk everything below bref (included).  Returns 0 if all verified. */
int
hammer2_walk(hammer2_dev_t *hmp, const hammer2_blockref_t *bref,
	     hammer2_walk_cb_t cb, void *arg, hammer2_walk_stats_t *stats)
{
	struct walk w = { hmp, cb, arg, stats, 0 };

	walk_bref(&w, bref, 0, NULL, 0);
	return stats->errors ? EIO : 0;
}

/*
 * Walk the volume (or freemap) tree hanging off volume header copy `zone`.
 * The root pseudo-blockref is reported at depth 0 and not counted.
 */
int
hammer2_walk_zone(hammer2_dev_t *hmp, int zone, int freemap,
		  hammer2_walk_cb_t cb, void *arg, hammer2_walk_stats_t *stats)
{
	struct walk w = { hmp, cb, arg, stats, 0 };
	hammer2_volhdr_info_t info;
	hammer2_volume_data_t *vd;
	hammer2_blockref_t root;
	int error;

	if (zone < 0 || zone >= HAMMER2_NUM_VOLHDRS)
		return hammer2_seterr(EINVAL, "volume header index %d out of "
				      "range 0..3", zone);
	vd = malloc(sizeof(*vd));
	if (vd == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	error = hammer2_volhdr_read(hmp, zone, vd, &info);
	if (error == ENOENT)
		error = hammer2_seterr(ENOENT, "volume header %d lies beyond the "
				       "end of the device", zone);
	else if (error)
		error = hammer2_seterr(error, "volume header %d: %s", zone,
				       info.error);
	if (error == 0) {
		memset(&root, 0, sizeof(root));
		root.type = freemap ? HAMMER2_BREF_TYPE_FREEMAP :
				      HAMMER2_BREF_TYPE_VOLUME;
		root.data_off = hammer2_zone_offset(zone) | HAMMER2_PBUFRADIX;
		root.mirror_tid = freemap ? vd->freemap_tid : vd->mirror_tid;
		walk_bref(&w, &root, 0, vd, HAMMER2_VOLUME_BYTES);
		error = stats->errors ? EIO : 0;
	}
	free(vd);
	return error;
}
