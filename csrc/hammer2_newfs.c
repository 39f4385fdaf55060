/*
 * newfs: lay out an empty HAMMER2 filesystem as newfs_hammer2 does, on
 * one volume or several laid end to end (volume version 2).
 *
 *   [0, 4 MiB)            reserved segment (volume header, freemap sets)
 *   [4 MiB, boot_end)     boot area, nominally 64 MiB
 *   [boot_end, aux_end)   aux area, nominally 256 MiB
 *   aux_end ...           the super-root, then the PFS roots (LOCAL
 *                         first), 1 KiB each, then allocator_beg:
 *                         everything above is allocated through the
 *                         freemap, which starts empty.
 *
 * All of that is on the root volume (volume 0).  Boot and aux areas halve
 * until they are at most 1/20 of the whole filesystem and are rounded up
 * to 8 MiB; an aux area asked for (as newfs_hammer2 -r, at most 1 GiB)
 * is that, rounded up.  Every volume but the last is a whole number of
 * GiB; the last is 8 MiB aligned.  The root volume's reserved start, boot
 * and aux areas and every volume's last 64 KiB are zeroed (a file's as
 * holes), and every header copy that
 * fits in a volume is written: the root volume's carry the filesystem,
 * the others only who they are (id, count, fsid, offsets, sizes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"
#include "hammer2_backend.h"

#define NEWFS_TID		16	/* first transaction id */
#define BOOT_NOM		(64ULL << 20)
#define AUX_NOM			(256ULL << 20)
#define AREA_MIN		((uint64_t)HAMMER2_VOLUME_ALIGN)
#define AUX_MAX			(1ULL << 30)	/* as newfs_hammer2 -r */
#define VOLUME_MIN		(64ULL << 20)
#define L1_BYTES		(1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX)
#define BREF_TYPE_INVALID	7	/* a non-root volume's sroot_blockset */

/* HAMMER2's filesystem type uuid, in media byte order */
static const uint8_t fstype_uuid[16] = {
	0xd1, 0x9a, 0xbb, 0x5c, 0x2d, 0x86, 0xdc, 0x11,
	0xa9, 0x4d, 0x01, 0x30, 0x1b, 0xb8, 0xa9, 0xf5
};

static uint64_t
area_size(uint64_t nominal, uint64_t volu_size)
{
	while (nominal > volu_size / 20 && nominal > AREA_MIN)
		nominal >>= 1;
	if (nominal < AREA_MIN)
		nominal = AREA_MIN;
	return (nominal + AREA_MIN - 1) & ~(AREA_MIN - 1);
}


static void
inode_bref(hammer2_blockref_t *bref, const hammer2_inode_data_t *ip,
	   hammer2_off_t off, int check, int comp, int flags)
{
	memset(bref, 0, sizeof(*bref));
	bref->type = HAMMER2_BREF_TYPE_INODE;
	bref->methods = (uint8_t)HAMMER2_ENC_COMP(comp);
	bref->flags = (uint8_t)flags;
	bref->copyid = 0xFF;		/* local media */
	bref->vradix = HAMMER2_RADIX_MIN;
	bref->key = ip->meta.name_key;
	bref->mirror_tid = NEWFS_TID;
	bref->data_off = off | HAMMER2_RADIX_MIN;
	hammer2_check_set(bref, check, ip, sizeof(*ip));
}

/* Zero [off, off + n) in 1 MiB writes. */
static int
zero_range(hammer2_backend_t *be, hammer2_off_t off, hammer2_off_t n)
{
	/* page aligned: a block device (O_DIRECT) writes it without a bounce */
	static const uint8_t zero[1 << 20] __attribute__((aligned(4096)));
	int error = 0;

	if (be->ops->zero && (error = be->ops->zero(be, off, n)) != EOPNOTSUPP)
		return error;
	error = 0;

	while (n > 0 && error == 0) {
		size_t chunk = n < sizeof(zero) ? (size_t)n : sizeof(zero);

		error = be->ops->pwrite(be, zero, chunk, off);
		off += chunk;
		n -= chunk;
	}
	return error;
}

/* A file is sized to what was asked; a device must already hold it. */
static int
device_bytes(hammer2_backend_t *be, hammer2_off_t want, hammer2_off_t *sizep)
{
	uint64_t bytes;
	int error = be->ops->size(be, &bytes);

	if (error)
		return error;
	if (want == 0)
		want = bytes;
	if (want != bytes && be->ops->resize)
		error = be->ops->resize(be, want);
	else if (want > bytes)
		error = hammer2_seterr(ENOSPC, "%s: device holds %llu bytes, "
				       "%llu requested", be->name,
				       (unsigned long long)bytes,
				       (unsigned long long)want);
	*sizep = want;
	return error;
}

typedef struct newfs_vol {
	hammer2_backend_t	*be;
	hammer2_off_t		offset;
	hammer2_off_t		size;
} newfs_vol_t;

/*
 * Open and size every volume: all but the last a whole number of GiB
 * (at least one), the last 8 MiB aligned.
 */
static int
volumes_open(const char *const *paths, const hammer2_off_t *sizes, int n,
	     newfs_vol_t *vols, hammer2_off_t *totalp)
{
	hammer2_off_t total = 0;
	int error = 0;

	if (n < 1 || n > HAMMER2_MAX_VOLUMES)
		return hammer2_seterr(EINVAL, "a filesystem has 1 to %d volumes, "
				      "not %d", HAMMER2_MAX_VOLUMES, n);
	for (int i = 0; i < n && error == 0; ++i) {
		hammer2_off_t size, align = i < n - 1 ? L1_BYTES :
			(hammer2_off_t)HAMMER2_VOLUME_ALIGN;
		hammer2_off_t min = i < n - 1 ? L1_BYTES : VOLUME_MIN;

		error = hammer2_backend_open(paths[i], HAMMER2_BE_RDWR |
					     HAMMER2_BE_CREATE, &vols[i].be);
		if (error == 0)
			error = device_bytes(vols[i].be, sizes[i], &size);
		if (error)
			break;
		vols[i].offset = total;
		vols[i].size = size & ~(align - 1);
		if (vols[i].size < min)
			error = hammer2_seterr(EINVAL, "%s: %llu bytes is too small "
					       "for a HAMMER2 volume%s (minimum "
					       "%llu)", paths[i],
					       (unsigned long long)size,
					       i < n - 1 ? " not last of a set" : "",
					       (unsigned long long)min);
		total += vols[i].size;
	}
	*totalp = total;
	return error;
}

/*
 * The root volume's content: zeroed reserved segment, boot and aux
 * areas, the super-root and PFS root inodes.  Sets vd's sroot_blockset
 * and allocator_beg.
 */
static int
root_format(hammer2_backend_t *be, const hammer2_newfs_t *o, const char *label,
	    hammer2_off_t base, hammer2_volume_data_t *vd)
{
	hammer2_inode_data_t ips[3];	/* label PFS, LOCAL, super-root */
	hammer2_blockref_t brefs[3];
	uint64_t now = hammer2_time_now();
	int npfs = strcmp(label, "LOCAL") ? 2 : 1;	/* LOCAL always exists */
	int error;

	if ((error = zero_range(be, 0, base)))
		return error;
	/* super-root at base, PFS roots after it: LOCAL, then the label */
	for (int i = 0; i < npfs; ++i) {
		error = hammer2_pfs_inode_init(&ips[i], i == 0 ? "LOCAL" : label,
					       HAMMER2_PFSTYPE_MASTER, 0, o->comp,
					       o->check, o->nmasters,
					       npfs == 2 && i == 0 ? NULL : o->clid, now);
		if (error)
			return error;
		inode_bref(&brefs[i], &ips[i], base + (hammer2_off_t)(i + 1) * 1024,
			   o->check, HAMMER2_COMP_NONE, HAMMER2_BREF_FLAG_PFSROOT);
		if ((error = be->ops->pwrite(be, &ips[i], 1024,
					base + (hammer2_off_t)(i + 1) * 1024)))
			return error;
	}
	if (npfs == 2 && brefs[1].key < brefs[0].key) {	/* blockset is sorted */
		hammer2_blockref_t t = brefs[0];

		brefs[0] = brefs[1];
		brefs[1] = t;
	}
	memset(&ips[2], 0, sizeof(ips[2]));
	ips[2].meta.version = 1;
	ips[2].meta.type = HAMMER2_OBJTYPE_DIRECTORY;
	ips[2].meta.mode = 0700;
	ips[2].meta.nlinks = 2;
	ips[2].meta.name_len = 7;
	memcpy(ips[2].filename, "SUPROOT", 7);
	ips[2].meta.comp_algo = HAMMER2_COMP_AUTOZERO;
	ips[2].meta.check_algo = HAMMER2_CHECK_XXHASH64;
	ips[2].meta.pfs_type = HAMMER2_PFSTYPE_SUPROOT;
	ips[2].meta.ctime = ips[2].meta.mtime = ips[2].meta.btime = now;
	if ((error = hammer2_uuid_random(&ips[2].meta.pfs_clid)) ||
	    (error = hammer2_uuid_random(&ips[2].meta.pfs_fsid)))
		return error;
	memcpy(ips[2].u.blockset.blockref, brefs, (size_t)npfs * sizeof(brefs[0]));
	inode_bref(&brefs[2], &ips[2], base, HAMMER2_CHECK_XXHASH64,
		   HAMMER2_COMP_AUTOZERO, 0);
	vd->sroot_blockset.blockref[0] = brefs[2];
	vd->allocator_beg = base + (hammer2_off_t)(npfs + 1) * 1024;
	return be->ops->pwrite(be, &ips[2], 1024, base);
}

/* Write header copies 0..nhdr-1 that fit in the volume; zero the rest. */
static int
headers_write(hammer2_backend_t *be, hammer2_volume_data_t *vd,
	      hammer2_off_t size, int nhdr)
{
	int error = 0;

	hammer2_volhdr_crc(vd);
	for (int zone = 0; zone < HAMMER2_NUM_VOLHDRS && error == 0; ++zone) {
		hammer2_off_t off = hammer2_zone_offset(zone);

		if (off + HAMMER2_VOLUME_BYTES > size)
			break;
		/* unused copies are zeroed so no stale header survives */
		if (zone >= nhdr)
			error = zero_range(be, off, HAMMER2_VOLUME_BYTES);
		else
			error = be->ops->pwrite(be, vd, sizeof(*vd), off);
	}
	return error;
}

int
hammer2_newfs(const char *const *paths, const hammer2_off_t *sizes,
	      int npaths, const hammer2_newfs_t *o)
{
	newfs_vol_t vols[HAMMER2_MAX_VOLUMES];
	hammer2_volume_data_t *vd = NULL;
	const char *label = o->label ? o->label : "DATA";
	hammer2_off_t total = 0, base, boot, aux;
	hammer2_uuid_t fsid;
	int error, nhdr;

	if (strlen(label) == 0 || strlen(label) > HAMMER2_INODE_MAXNAME ||
	    strchr(label, '/'))
		return hammer2_seterr(EINVAL, "invalid PFS label '%s'", label);
	if (o->comp < 0 || HAMMER2_DEC_ALGO(o->comp) > HAMMER2_COMP_ZLIB ||
	    o->check < 0 || o->check > HAMMER2_CHECK_SHA192)
		return hammer2_seterr(EINVAL, "unknown compression or check "
				      "algorithm");
	memset(vols, 0, sizeof(vols));
	if ((error = volumes_open(paths, sizes, npaths, vols, &total)) ||
	    (error = hammer2_uuid_random(&fsid)))
		goto out;
	boot = area_size(BOOT_NOM, total);
	aux = area_size(AUX_NOM, total);
	if (o->auxsize > AUX_MAX) {
		error = hammer2_seterr(EINVAL, "aux area of %llu bytes: at most "
				       "1 GiB", (unsigned long long)o->auxsize);
		goto out;
	}
	if (o->auxsize)		/* as asked, rounded up to 8 MiB */
		aux = (o->auxsize + AREA_MIN - 1) & ~(AREA_MIN - 1);
	base = HAMMER2_ZONE_SEG + boot + aux;
	/* the first 1 GiB's freemap leaf holds what newfs lays out */
	if (base + HAMMER2_PBUFSIZE > vols[0].size || base >= L1_BYTES) {
		error = hammer2_seterr(EINVAL, "%s: volume 0 cannot hold the boot "
				       "and aux areas (%llu bytes)", paths[0],
				       (unsigned long long)base);
		goto out;
	}
	if (posix_memalign((void **)&vd, 4096, sizeof(*vd))) {
		vd = NULL;
		error = hammer2_seterr(ENOMEM, "out of memory");
		goto out;
	}
	nhdr = o->nvolhdrs > 0 ? o->nvolhdrs : HAMMER2_NUM_VOLHDRS;
	for (int i = 0; i < npaths && error == 0; ++i) {
		hammer2_backend_t *be = vols[i].be;

		memset(vd, 0, sizeof(*vd));
		vd->magic = HAMMER2_VOLUME_ID_HBO;
		vd->volu_size = vols[i].size;
		vd->version = 2;
		vd->peer_type = 3;			/* a HAMMER2 volume */
		vd->volu_id = (uint8_t)i;
		vd->nvolumes = (uint8_t)npaths;
		vd->total_size = total;
		for (int k = 0; k < HAMMER2_MAX_VOLUMES; ++k)
			vd->volu_loff[k] = k < npaths ? vols[k].offset : ~0ULL;
		vd->fsid = fsid;
		memcpy(vd->fstype.bytes, fstype_uuid, sizeof(fstype_uuid));
		/* all but the boot/aux areas and each 1 GiB's reserved 4 MiB */
		vd->allocator_size = total - boot - aux -
			((total + L1_BYTES - 1) / L1_BYTES) * HAMMER2_ZONE_SEG;
		vd->mirror_tid = NEWFS_TID;
		vd->freemap_tid = NEWFS_TID;
		error = zero_range(be, vols[i].size - HAMMER2_PBUFSIZE,
				   HAMMER2_PBUFSIZE);
		if (error)
			break;
		if (i == 0) {
			vd->boot_beg = HAMMER2_ZONE_SEG;
			vd->boot_end = HAMMER2_ZONE_SEG + boot;
			vd->aux_beg = vd->boot_end;
			vd->aux_end = vd->aux_beg + aux;
			vd->allocator_free = vd->allocator_size;
			error = root_format(be, o, label, base, vd);
		} else {
			for (int k = 0; k < HAMMER2_SET_COUNT; ++k)
				vd->sroot_blockset.blockref[k].type =
					BREF_TYPE_INVALID;
		}
		if (error == 0)
			error = headers_write(be, vd, vols[i].size, nhdr);
		if (error == 0)
			error = be->ops->flush(be);
	}
out:
	free(vd);
	for (int i = 0; i < npaths && i < HAMMER2_MAX_VOLUMES; ++i)
		hammer2_backend_close(vols[i].be);
	return error;
}
