/*
 * newfs: lay out an empty HAMMER2 volume as newfs_hammer2 does.
 *
 *   [0, 4 MiB)            reserved segment (volume header, freemap sets)
 *   [4 MiB, boot_end)     boot area, nominally 64 MiB
 *   [boot_end, aux_end)   aux area, nominally 256 MiB
 *   aux_end ...           the super-root, then the PFS roots (LOCAL
 *                         first), 1 KiB each, then allocator_beg:
 *                         everything above is allocated through the
 *                         freemap, which starts empty.
 *
 * Boot and aux areas halve until they are at most 1/20 of the volume and
 * are rounded up to 8 MiB.  The reserved start, the boot and aux areas
 * and the volume's last 64 KiB are zeroed, and every header copy that
 * fits in the volume is written.
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
#define VOLUME_MIN		(64ULL << 20)

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

int
hammer2_newfs(const char *path, const hammer2_newfs_t *o)
{
	hammer2_volume_data_t *vd = NULL;
	hammer2_inode_data_t ips[3];	/* label PFS, LOCAL, super-root */
	hammer2_blockref_t brefs[3];
	const char *label = o->label ? o->label : "DATA";
	hammer2_off_t size = 0, usable, base, boot, aux;
	uint64_t now = hammer2_time_now();
	int npfs = strcmp(label, "LOCAL") ? 2 : 1;	/* LOCAL always exists */
	hammer2_backend_t *be;
	int error, nhdr;

	if (strlen(label) == 0 || strlen(label) > HAMMER2_INODE_MAXNAME ||
	    strchr(label, '/'))
		return hammer2_seterr(EINVAL, "invalid PFS label '%s'", label);
	if (o->comp < 0 || HAMMER2_DEC_ALGO(o->comp) > HAMMER2_COMP_ZLIB ||
	    o->check < 0 || o->check > HAMMER2_CHECK_SHA192)
		return hammer2_seterr(EINVAL, "unknown compression or check "
				      "algorithm");
	error = hammer2_backend_open(path, HAMMER2_BE_RDWR | HAMMER2_BE_CREATE,
				     &be);
	if (error)
		return error;
	error = device_bytes(be, o->size, &size);
	if (error)
		goto out;
	usable = size & ~((hammer2_off_t)HAMMER2_VOLUME_ALIGN - 1);
	if (usable < VOLUME_MIN) {
		error = hammer2_seterr(EINVAL, "%s: %llu bytes is too small for a "
				       "HAMMER2 volume (minimum %llu)", path,
				       (unsigned long long)size,
				       (unsigned long long)VOLUME_MIN);
		goto out;
	}
	size = usable;
	boot = area_size(BOOT_NOM, size);
	aux = area_size(AUX_NOM, size);
	base = HAMMER2_ZONE_SEG + boot + aux;
	if ((error = zero_range(be, 0, base)) ||
	    (error = zero_range(be, size - HAMMER2_PBUFSIZE, HAMMER2_PBUFSIZE)))
		goto out;

	/* super-root at base, PFS roots after it: LOCAL, then the label */
	for (int i = 0; i < npfs; ++i) {
		error = hammer2_pfs_inode_init(&ips[i], i == 0 ? "LOCAL" : label,
					       HAMMER2_PFSTYPE_MASTER, 0, o->comp,
					       o->check, o->nmasters,
					       npfs == 2 && i == 0 ? NULL : o->clid, now);
		if (error)
			goto out;
		inode_bref(&brefs[i], &ips[i], base + (hammer2_off_t)(i + 1) * 1024,
			   o->check, HAMMER2_COMP_NONE, HAMMER2_BREF_FLAG_PFSROOT);
		if ((error = be->ops->pwrite(be, &ips[i], 1024,
					base + (hammer2_off_t)(i + 1) * 1024)))
			goto out;
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
		goto out;
	memcpy(ips[2].u.blockset.blockref, brefs, (size_t)npfs * sizeof(brefs[0]));
	inode_bref(&brefs[2], &ips[2], base, HAMMER2_CHECK_XXHASH64,
		   HAMMER2_COMP_AUTOZERO, 0);
	if ((error = be->ops->pwrite(be, &ips[2], 1024, base)))
		goto out;

	vd = calloc(1, sizeof(*vd));
	if (vd == NULL) {
		error = hammer2_seterr(ENOMEM, "out of memory");
		goto out;
	}
	vd->magic = HAMMER2_VOLUME_ID_HBO;
	vd->boot_beg = HAMMER2_ZONE_SEG;
	vd->boot_end = HAMMER2_ZONE_SEG + boot;
	vd->aux_beg = vd->boot_end;
	vd->aux_end = vd->aux_beg + aux;
	vd->volu_size = size;
	vd->total_size = size;
	vd->version = 2;
	vd->peer_type = 3;			/* a HAMMER2 volume */
	vd->nvolumes = 1;
	vd->allocator_beg = base + (hammer2_off_t)(npfs + 1) * 1024;
	/* all but the boot/aux areas and each 1 GiB's reserved 4 MiB */
	vd->allocator_size = size - boot - aux -
		((size + (1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX) - 1) >>
		 HAMMER2_FREEMAP_LEVEL1_RADIX) * HAMMER2_ZONE_SEG;
	vd->allocator_free = vd->allocator_size;
	vd->mirror_tid = NEWFS_TID;
	vd->freemap_tid = NEWFS_TID;
	memcpy(vd->fstype.bytes, fstype_uuid, sizeof(fstype_uuid));
	if ((error = hammer2_uuid_random(&vd->fsid)))
		goto out;
	vd->volu_loff[0] = 0;
	for (int i = 1; i < HAMMER2_MAX_VOLUMES; ++i)
		vd->volu_loff[i] = ~0ULL;
	vd->sroot_blockset.blockref[0] = brefs[2];
	nhdr = o->nvolhdrs > 0 ? o->nvolhdrs : HAMMER2_NUM_VOLHDRS;
	for (int zone = 0; zone < HAMMER2_NUM_VOLHDRS; ++zone) {
		hammer2_off_t off = hammer2_zone_offset(zone);
		uint8_t *raw = (uint8_t *)vd;

		if (off + HAMMER2_VOLUME_BYTES > size)
			break;
		/* unused copies are zeroed so no stale header survives */
		if (zone >= nhdr) {
			if ((error = zero_range(be, off, HAMMER2_VOLUME_BYTES)))
				goto out;
			continue;
		}
		vd->icrc_sects[HAMMER2_VOL_ICRC_SECT1] =
			hammer2_icrc32(raw + HAMMER2_VOLUME_ICRC1_OFF,
				       HAMMER2_VOLUME_ICRC1_SIZE);
		vd->icrc_sects[HAMMER2_VOL_ICRC_SECT0] =
			hammer2_icrc32(raw, HAMMER2_VOLUME_ICRC0_SIZE);
		vd->icrc_volheader = hammer2_icrc32(raw, HAMMER2_VOLUME_ICRCVH_SIZE);
		if ((error = be->ops->pwrite(be, vd, sizeof(*vd), off)))
			goto out;
	}
	error = be->ops->flush(be);
out:
	free(vd);
	hammer2_backend_close(be);
	return error;
}
