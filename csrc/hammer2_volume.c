/*
 * Device open and volume header selection.  Up to four header copies sit
 * at the start of the first four 2 GiB zones of the root volume; the
 * valid copy with the highest mirror_tid is the current root of the
 * filesystem.  The volumes themselves are hammer2_volset.c's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"
#include "hammer2_backend.h"

hammer2_off_t
hammer2_zone_offset(int zone)
{
	return (hammer2_off_t)zone * HAMMER2_ZONE_BYTES64;
}

static void
add_warning(hammer2_dev_t *hmp, const char *fmt, ...)
{
	size_t old = hmp->warnings ? strlen(hmp->warnings) : 0;
	char line[256];
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	p = realloc(hmp->warnings, old + strlen(line) + 2);
	if (p == NULL)
		return;
	sprintf(p + old, "%s\n", line);
	hmp->warnings = p;
}

const char *
hammer2_volhdr_verify(const hammer2_volume_data_t *vd)
{
	const uint8_t *raw = (const uint8_t *)vd;

	if (vd->magic == HAMMER2_VOLUME_ID_ABO)
		return "byte-swapped header (other-endian media not supported)";
	if (vd->magic != HAMMER2_VOLUME_ID_HBO)
		return "bad magic";
	if (hammer2_icrc32(raw + HAMMER2_VOLUME_ICRC0_OFF,
			   HAMMER2_VOLUME_ICRC0_SIZE) !=
	    vd->icrc_sects[HAMMER2_VOL_ICRC_SECT0])
		return "bad CRC (sector 0)";
	if (hammer2_icrc32(raw + HAMMER2_VOLUME_ICRC1_OFF,
			   HAMMER2_VOLUME_ICRC1_SIZE) !=
	    vd->icrc_sects[HAMMER2_VOL_ICRC_SECT1])
		return "bad CRC (sector 1)";
	if (hammer2_icrc32(raw, HAMMER2_VOLUME_ICRCVH_SIZE) != vd->icrc_volheader)
		return "bad CRC (whole header)";
	return NULL;
}

static void
volhdr_info_set(hammer2_volhdr_info_t *info, const hammer2_volume_data_t *vd)
{
	info->valid = 1;
	info->mirror_tid = vd->mirror_tid;
	info->freemap_tid = vd->freemap_tid;
	info->volu_size = vd->volu_size;
	info->total_size = vd->total_size;
	info->allocator_size = vd->allocator_size;
	info->allocator_free = vd->allocator_free;
	info->version = vd->version;
}

/*
 * Read and verify header copy `zone` into vd.  Returns 0, ENOENT when the
 * zone lies past the end of the device, EINVAL (info->error says why) or
 * the device's read error.
 */
int
hammer2_volhdr_read(hammer2_dev_t *hmp, int zone, hammer2_volume_data_t *vd,
		    hammer2_volhdr_info_t *info)
{
	hammer2_off_t off = hammer2_zone_offset(zone);
	const char *why;
	int error;

	memset(info, 0, sizeof(*info));
	if (off + HAMMER2_VOLUME_BYTES > hmp->vols[0].devsize)
		return ENOENT;
	info->present = 1;
	if ((error = hammer2_dev_pread(hmp, vd, HAMMER2_VOLUME_BYTES, off))) {
		snprintf(info->error, sizeof(info->error), "%s",
			 hammer2_errmsg());
		return error == ENOENT || error == EINVAL ? EIO : error;
	}
	why = hammer2_volhdr_verify(vd);
	if (why) {
		snprintf(info->error, sizeof(info->error), "%s", why);
		return EINVAL;
	}
	volhdr_info_set(info, vd);
	return 0;
}

static hammer2_chain_t *
root_chain(hammer2_dev_t *hmp, int type)
{
	hammer2_blockref_t bref;
	hammer2_chain_t *chain;

	memset(&bref, 0, sizeof(bref));
	bref.type = (uint8_t)type;
	bref.keybits = 64;
	bref.data_off = hammer2_zone_offset(hmp->volhdrno) | HAMMER2_PBUFRADIX;
	bref.mirror_tid = type == HAMMER2_BREF_TYPE_VOLUME ?
			  hmp->voldata->mirror_tid : hmp->voldata->freemap_tid;
	chain = hammer2_chain_alloc(hmp, &bref);
	if (chain) {
		chain->data = (hammer2_media_data_t *)hmp->voldata;
		chain->flags |= HAMMER2_CHAIN_EMBEDDED | HAMMER2_CHAIN_LOADED;
	}
	return chain;
}

/* Pick the newest valid header; explain every rejected copy. */
static int
select_volhdr(hammer2_dev_t *hmp)
{
	hammer2_volume_data_t *vd = hmp->voldata + 1;	/* scratch copy */
	char why[512] = "", iomsg[512] = "";
	int best = -1, ioerr = 0;

	for (int zone = 0; zone < HAMMER2_NUM_VOLHDRS; ++zone) {
		hammer2_volhdr_info_t *info = &hmp->vh[zone];
		size_t used = strlen(why);

		int rc = hammer2_volhdr_read(hmp, zone, vd, info);

		if (rc == ENOENT)
			break;
		if (rc && rc != EINVAL && ioerr == 0) {
			ioerr = rc;
			snprintf(iomsg, sizeof(iomsg), "%s", hammer2_errmsg());
		}
		if (!info->valid) {
			snprintf(why + used, sizeof(why) - used, "%s%d: %s",
				 used ? "; " : "", zone, info->error);
			continue;
		}
		if (best < 0 || info->mirror_tid > hmp->vh[best].mirror_tid) {
			best = zone;
			memcpy(hmp->voldata, vd, sizeof(*vd));
		}
	}
	if (best < 0 && ioerr)	/* unreadable (e.g. disconnected): say so */
		return hammer2_seterr(ioerr, "%s", iomsg);
	if (best < 0)
		return hammer2_seterr(EINVAL, "%s: no valid volume header (%s)",
				      hmp->path, why);
	hmp->volhdrno = best;
	/* copies rotate over the zones whose reserved segment fits */
	while (hmp->nvolhdrs < HAMMER2_NUM_VOLHDRS &&
	       hammer2_zone_offset(hmp->nvolhdrs) + HAMMER2_ZONE_SEG <=
	       hmp->voldata->volu_size &&
	       hammer2_zone_offset(hmp->nvolhdrs) + HAMMER2_VOLUME_BYTES <=
	       hmp->vols[0].devsize)
		++hmp->nvolhdrs;
	if (hmp->nvolhdrs == 0)
		hmp->nvolhdrs = 1;
	for (int zone = 0; zone < HAMMER2_NUM_VOLHDRS; ++zone) {
		hammer2_volhdr_info_t *info = &hmp->vh[zone];

		if (info->present && !info->valid)
			add_warning(hmp, "volume header %d at 0x%llx: %s, skipped",
				    zone,
				    (unsigned long long)hammer2_zone_offset(zone),
				    info->error);
	}
	return 0;
}

/* "a:b:c": the volumes' paths, for messages. */
static char *
join_paths(const char *const *paths, int npaths)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < npaths; ++i)
		len += strlen(paths[i]) + 1;
	if ((s = calloc(1, len)) == NULL)
		return NULL;
	for (int i = 0; i < npaths; ++i) {
		if (i)
			strcat(s, ":");
		strcat(s, paths[i]);
	}
	return s;
}

int
hammer2_dev_open(const char *const *paths, int npaths, int flags,
		 hammer2_dev_t **hmpp)
{
	hammer2_dev_t *hmp;
	int error;

	*hmpp = NULL;
	hmp = calloc(1, sizeof(*hmp));
	if (hmp == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	hmp->path = join_paths(paths, npaths);
	pthread_rwlock_init(&hmp->translock, NULL);
	pthread_mutex_init(&hmp->faultlock, NULL);
	hammer2_io_init(hmp);
	/* two header buffers: the selected copy and a scratch one */
	if (hmp->path == NULL ||
	    posix_memalign((void **)&hmp->voldata, 4096,
			   2 * sizeof(hammer2_volume_data_t))) {
		hmp->voldata = NULL;
		hammer2_dev_close(hmp);
		return hammer2_seterr(ENOMEM, "out of memory");
	}
	hmp->readonly = !(flags & HAMMER2_OPEN_RDWR);
	error = hammer2_volset_open(hmp, paths, npaths);
	if (error == 0)
		error = select_volhdr(hmp);
	if (error == 0)
		error = hammer2_volset_verify(hmp);
	if (error == 0 && hmp->total_size > hmp->size)
		add_warning(hmp, "volume size %llu exceeds the device's %llu "
			    "bytes (truncated image?)",
			    (unsigned long long)hmp->total_size,
			    (unsigned long long)hmp->size);
	/* reading a truncated image is worth a try; writing to one is not */
	if (error == 0 && !hmp->readonly && hmp->total_size > hmp->size)
		error = hammer2_seterr(ENOSPC, "%s: the device holds %llu bytes, "
				       "too small for its %llu-byte volume",
				       hmp->path, (unsigned long long)hmp->size,
				       (unsigned long long)hmp->total_size);
	if (error == 0) {
		hmp->mtid = hmp->voldata->mirror_tid + 1;
		hmp->vchain = root_chain(hmp, HAMMER2_BREF_TYPE_VOLUME);
		hmp->fchain = root_chain(hmp, HAMMER2_BREF_TYPE_FREEMAP);
		if (hmp->vchain == NULL || hmp->fchain == NULL)
			error = hammer2_seterr(ENOMEM, "out of memory");
	}
	if (error) {
		hammer2_dev_close(hmp);
		return error;
	}
	*hmpp = hmp;
	return 0;
}

/* Close; unflushed modifications are discarded (the last flush stands). */
void
hammer2_dev_close(hammer2_dev_t *hmp)
{
	if (hmp->vchain) {
		hammer2_chain_release_subtree(hmp->vchain);
		hammer2_chain_drop(hmp->vchain);
	}
	if (hmp->fchain) {
		hammer2_chain_release_subtree(hmp->fchain);
		hammer2_chain_drop(hmp->fchain);
	}
	hammer2_freemap_destroy(hmp);
	hammer2_io_cleanup(hmp);
	hammer2_volset_close(hmp);
	free(hmp->voldata);
	free(hmp->encbuf);
	free(hmp->warnings);
	free(hmp->path);
	hammer2_devrec_free(hmp->rec.ents, hmp->rec.count);
	pthread_mutex_destroy(&hmp->faultlock);
	pthread_rwlock_destroy(&hmp->translock);
	free(hmp);
}

/*
 * Transactions and who has to wait are counted: a resync in passes
 * (hammer2_nodeset.c) lets waiting transactions in between its steps, and
 * goes on once the node rests.
 */
void
hammer2_trans_begin(hammer2_dev_t *hmp, int write)
{
	if ((write ? pthread_rwlock_trywrlock(&hmp->translock) :
		     pthread_rwlock_tryrdlock(&hmp->translock)) != 0) {
		__atomic_add_fetch(&hmp->trans_waiting, 1, __ATOMIC_RELAXED);
		if (write)
			pthread_rwlock_wrlock(&hmp->translock);
		else
			pthread_rwlock_rdlock(&hmp->translock);
		__atomic_sub_fetch(&hmp->trans_waiting, 1, __ATOMIC_RELAXED);
	}
	__atomic_add_fetch(&hmp->trans_begun, 1, __ATOMIC_RELAXED);
}

void
hammer2_trans_end(hammer2_dev_t *hmp)
{
	pthread_rwlock_unlock(&hmp->translock);
}

/*
 * For assertions: a write transaction holds the device (the caller's, or
 * the one a cluster flush runs under).  A reader gets in unless a writer
 * holds it (or, by the rwlock's policy, waits: then it errs toward yes).
 */
int
hammer2_trans_writing(hammer2_dev_t *hmp)
{
	if (pthread_rwlock_tryrdlock(&hmp->translock) != 0)
		return 1;
	pthread_rwlock_unlock(&hmp->translock);
	return 0;
}

/* Set a header's CRCs: sector 1, then sector 0 (holding it), then all. */
void
hammer2_volhdr_crc(hammer2_volume_data_t *vd)
{
	uint8_t *raw = (uint8_t *)vd;

	vd->icrc_sects[HAMMER2_VOL_ICRC_SECT1] =
		hammer2_icrc32(raw + HAMMER2_VOLUME_ICRC1_OFF,
			       HAMMER2_VOLUME_ICRC1_SIZE);
	vd->icrc_sects[HAMMER2_VOL_ICRC_SECT0] =
		hammer2_icrc32(raw + HAMMER2_VOLUME_ICRC0_OFF,
			       HAMMER2_VOLUME_ICRC0_SIZE);
	vd->icrc_volheader = hammer2_icrc32(raw, HAMMER2_VOLUME_ICRCVH_SIZE);
}

/*
 * Write the in-memory header (hmp->voldata) with fresh CRCs to header
 * copy `zone` and make it the current one.
 */
int
hammer2_volhdr_write(hammer2_dev_t *hmp, int zone)
{
	hammer2_volume_data_t *vd = hmp->voldata;
	hammer2_off_t off = hammer2_zone_offset(zone);
	int error;

	hammer2_volhdr_crc(vd);
	error = hammer2_io_write(hmp, off, vd, HAMMER2_VOLUME_BYTES);
	if (error)
		return error;
	hmp->volhdrno = zone;
	memset(&hmp->vh[zone], 0, sizeof(hmp->vh[zone]));
	hmp->vh[zone].present = 1;
	volhdr_info_set(&hmp->vh[zone], vd);
	hmp->vchain->bref.data_off = off | HAMMER2_PBUFRADIX;
	hmp->fchain->bref.data_off = off | HAMMER2_PBUFRADIX;
	return 0;
}
