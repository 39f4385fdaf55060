/*
 * The volumes of one filesystem.  A multi-volume filesystem (volume
 * version 2, up to 64 volumes) is named by all its volumes; each carries
 * its own headers saying which volume it is (volu_id), how many there are
 * (nvolumes), the filesystem (fsid) and where every volume starts in the
 * logical offset space (volu_loff[]).  Only the root volume's headers are
 * rewritten by flushes: the others keep what newfs wrote.
 *
 * hammer2_volset_open opens every device and puts each in place by the id
 * its own best header gives; hammer2_volset_verify then checks the set
 * against the root volume's selected header.  Anything missing, extra,
 * duplicated, foreign or inconsistent is refused, naming the volume.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"
#include "hammer2_backend.h"

#define L1_BYTES	(1ULL << HAMMER2_FREEMAP_LEVEL1_RADIX)
#define VOLUME_ALIGN	((hammer2_off_t)HAMMER2_VOLUME_ALIGN)

static int
volume_open(hammer2_volume_t *v, const char *path, int readonly)
{
	int error;

	v->path = strdup(path);
	if (v->path == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	error = hammer2_backend_open(path, readonly ? 0 : HAMMER2_BE_RDWR,
				     &v->be);
	if (error == 0)
		error = v->be->ops->size(v->be, &v->devsize);
	if (error == 0 && v->devsize < HAMMER2_VOLUME_BYTES)
		error = hammer2_seterr(EINVAL, "%s: %llu bytes is too small to "
				       "hold a HAMMER2 volume header", path,
				       (unsigned long long)v->devsize);
	return error;
}

/*
 * Read header copy `zone` of volume v into vd; *why says what fails its
 * checks (NULL: it verifies).  ENOENT: the copy lies past the device's end.
 */
static int
volume_read_copy(hammer2_volume_t *v, int zone, hammer2_volume_data_t *vd,
		 const char **why)
{
	hammer2_off_t off = hammer2_zone_offset(zone);
	int error;

	if (zone < 0 || zone >= HAMMER2_NUM_VOLHDRS ||
	    off + HAMMER2_VOLUME_BYTES > v->devsize)
		return ENOENT;
	error = v->be->ops->pread(v->be, vd, HAMMER2_VOLUME_BYTES, off);
	if (error == 0)
		*why = hammer2_volhdr_verify(vd);
	return error;
}

/*
 * The newest valid header copy of one volume of a set, read from its
 * device directly (only the root volume's copies go through the DIO
 * layer, as the live headers).
 */
static int
volume_probe(hammer2_volume_t *v, hammer2_volume_data_t *vd)
{
	hammer2_volume_data_t *scratch = vd + 1;
	const char *why = "no header copy inside the device";
	hammer2_tid_t best_tid = 0;
	int found = 0, error;

	for (int zone = 0; zone < HAMMER2_NUM_VOLHDRS; ++zone) {
		error = volume_read_copy(v, zone, scratch, &why);
		if (error == ENOENT)
			break;
		if (error)
			return error;
		if (why != NULL)
			continue;
		if (!found || scratch->mirror_tid > best_tid) {
			memcpy(vd, scratch, sizeof(*vd));
			best_tid = vd->mirror_tid;
			found = 1;
		}
	}
	if (!found)
		return hammer2_seterr(EINVAL, "%s: no valid volume header (%s)",
				      v->path, why);
	return 0;
}

/*
 * Header copy `zone` of volume `id` of an open set, as it is on the
 * device (what `volhdr` dumps; every volume keeps copies of its own).
 */
int
hammer2_volset_header_copy(hammer2_dev_t *hmp, int id, int zone,
			   hammer2_volume_data_t *vd, const char **why)
{
	KKASSERT(id >= 0 && id < hmp->nvols && hmp->vols[id].be != NULL);
	return volume_read_copy(&hmp->vols[id], zone, vd, why);
}

/* Put volume `v` (its header in vd) in its slot; first is vols[0]'s. */
static int
volume_place(hammer2_dev_t *hmp, hammer2_volume_t *v,
	     const hammer2_volume_data_t *vd, const hammer2_volume_data_t *first,
	     const char *first_path)
{
	int id = vd->volu_id;

	if (vd->version < 2 || vd->nvolumes < 2)
		return hammer2_seterr(EINVAL, "%s is a single-volume filesystem "
				      "(version %u, %u volumes), not one of a "
				      "set", v->path, vd->version, vd->nvolumes);
	if (id >= vd->nvolumes || id >= HAMMER2_MAX_VOLUMES)
		return hammer2_seterr(EINVAL, "%s has bad volume id %d of %u",
				      v->path, id, vd->nvolumes);
	if (first && memcmp(&first->fsid, &vd->fsid, sizeof(vd->fsid)))
		return hammer2_seterr(EINVAL, "%s belongs to another filesystem "
				      "than %s (different fsid)", v->path,
				      first_path);
	if (first && (first->nvolumes != vd->nvolumes ||
		      first->version != vd->version))
		return hammer2_seterr(EINVAL, "%s is one of %u volumes (version "
				      "%u), %s one of %u (version %u)", v->path,
				      vd->nvolumes, vd->version, first_path,
				      first->nvolumes, first->version);
	if (hmp->vols[id].be)
		return hammer2_seterr(EINVAL, "%s and %s are both volume %d",
				      hmp->vols[id].path, v->path, id);
	v->offset = vd->volu_loff[id];
	v->size = vd->volu_size;
	hmp->vols[id] = *v;
	return 0;
}

/* Open several volumes and place each by its id. */
static int
volset_open_many(hammer2_dev_t *hmp, const char *const *paths, int npaths)
{
	hammer2_volume_data_t *vd, *first;
	int error = 0;

	if (posix_memalign((void **)&vd, 4096, 3 * sizeof(*vd)))
		return hammer2_seterr(ENOMEM, "out of memory");
	first = vd + 2;
	for (int i = 0; i < npaths && error == 0; ++i) {
		hammer2_volume_t v;

		memset(&v, 0, sizeof(v));
		error = volume_open(&v, paths[i], hmp->readonly);
		if (error == 0)
			error = volume_probe(&v, vd);
		if (error == 0)
			error = volume_place(hmp, &v, vd, i ? first : NULL,
					     paths[0]);
		if (error) {
			hammer2_backend_close(v.be);
			free(v.path);
		} else if (i == 0) {
			memcpy(first, vd, sizeof(*vd));
		}
	}
	if (error == 0 && npaths != first->nvolumes) {
		int missing = 0;

		while (hmp->vols[missing].be)
			++missing;
		error = hammer2_seterr(ENOENT, "%s: volume %d of %u is missing "
				       "(give every volume, joined by ':')",
				       hmp->path, missing, first->nvolumes);
	}
	free(vd);
	return error;
}

int
hammer2_volset_open(hammer2_dev_t *hmp, const char *const *paths, int npaths)
{
	int error;

	if (npaths < 1 || npaths > HAMMER2_MAX_VOLUMES)
		return hammer2_seterr(EINVAL, "a filesystem has 1 to %d volumes, "
				      "not %d", HAMMER2_MAX_VOLUMES, npaths);
	hmp->nvols = npaths;
	if (npaths == 1) {
		error = volume_open(&hmp->vols[0], paths[0], hmp->readonly);
		hmp->size = hmp->vols[0].devsize;
		return error;
	}
	error = volset_open_many(hmp, paths, npaths);
	if (error)
		return error;
	hmp->size = hmp->vols[npaths - 1].offset + hmp->vols[npaths - 1].devsize;
	return 0;
}

/* The layout rules of volume i of n. */
static int
volume_layout_check(const hammer2_dev_t *hmp, int i)
{
	const hammer2_volume_t *v = &hmp->vols[i];
	hammer2_off_t want = i ? v[-1].offset + v[-1].size : 0;

	if (v->offset != want)
		return hammer2_seterr(EINVAL, "%s: volume %d starts at 0x%llx, "
				      "not 0x%llx where volume %d ends", v->path,
				      i, (unsigned long long)v->offset,
				      (unsigned long long)want, i - 1);
	if (v->offset != hmp->voldata->volu_loff[i])
		return hammer2_seterr(EINVAL, "%s: volume %d starts at 0x%llx by "
				      "its own header, 0x%llx by the root "
				      "volume's", v->path, i,
				      (unsigned long long)v->offset,
				      (unsigned long long)hmp->voldata->volu_loff[i]);
	if (i < hmp->nvols - 1 &&
	    (v->size < L1_BYTES || (v->size & (L1_BYTES - 1))))
		return hammer2_seterr(EINVAL, "%s: volume %d's size 0x%llx is not "
				      "a multiple of 1 GiB", v->path, i,
				      (unsigned long long)v->size);
	if (i == hmp->nvols - 1 && (v->size & (VOLUME_ALIGN - 1)))
		return hammer2_seterr(EINVAL, "%s: volume %d's size 0x%llx is not "
				      "8 MiB aligned", v->path, i,
				      (unsigned long long)v->size);
	if (i < hmp->nvols - 1 && v->devsize < v->size)
		return hammer2_seterr(EINVAL, "%s: the device holds %llu bytes, "
				      "less than its volume's %llu", v->path,
				      (unsigned long long)v->devsize,
				      (unsigned long long)v->size);
	return 0;
}

/*
 * Check the set against the root volume's selected header and set the
 * filesystem's logical size.  One volume given alone must be a whole
 * filesystem.
 */
int
hammer2_volset_verify(hammer2_dev_t *hmp)
{
	const hammer2_volume_data_t *vd = hmp->voldata;
	hammer2_off_t sum = 0;
	int error;

	hmp->vols[0].size = vd->volu_size;
	if (hmp->nvols == 1) {
		if (vd->version >= 2 && (vd->nvolumes > 1 || vd->volu_id != 0))
			return hammer2_seterr(EINVAL, "%s is volume %u of a "
					      "%u-volume filesystem: give every "
					      "volume, joined by ':'", hmp->path,
					      vd->volu_id, vd->nvolumes);
		hmp->total_size = vd->volu_size;
		return 0;
	}
	for (int i = 0; i < hmp->nvols; ++i) {
		if ((error = volume_layout_check(hmp, i)) != 0)
			return error;
		sum += hmp->vols[i].size;
	}
	for (int i = hmp->nvols; i < HAMMER2_MAX_VOLUMES; ++i)
		if (vd->volu_loff[i] != ~(hammer2_off_t)0)
			return hammer2_seterr(EINVAL, "%s: the root volume places "
					      "a volume %d at 0x%llx, past its "
					      "%d volumes", hmp->path, i,
					      (unsigned long long)vd->volu_loff[i],
					      hmp->nvols);
	if (vd->total_size != sum)
		return hammer2_seterr(EINVAL, "%s: total_size 0x%llx in the root "
				      "header, the volumes add up to 0x%llx",
				      hmp->path,
				      (unsigned long long)vd->total_size,
				      (unsigned long long)sum);
	hmp->total_size = sum;
	return 0;
}

void
hammer2_volset_close(hammer2_dev_t *hmp)
{
	for (int i = 0; i < HAMMER2_MAX_VOLUMES; ++i) {
		hammer2_backend_close(hmp->vols[i].be);
		free(hmp->vols[i].path);
		hmp->vols[i].be = NULL;
		hmp->vols[i].path = NULL;
	}
}

/*
 * Rewrite the last volume's header copies for its new size (growfs of a
 * set): volu_size, and the filesystem's total and allocator sizes as its
 * newfs copy carried them; copies in newly reached zones are added.
 */
int
hammer2_volset_grow_last(hammer2_dev_t *hmp, hammer2_off_t size)
{
	hammer2_volume_t *v = &hmp->vols[hmp->nvols - 1];
	hammer2_volume_data_t *vd;
	hammer2_off_t delta = size - v->size;
	int error;

	if (posix_memalign((void **)&vd, 4096, 2 * sizeof(*vd)))
		return hammer2_seterr(ENOMEM, "out of memory");
	error = volume_probe(v, vd);
	if (error == 0) {
		vd->volu_size = size;
		vd->total_size += delta;
		vd->allocator_size += delta;
		hammer2_volhdr_crc(vd);
	}
	for (int zone = 0; zone < HAMMER2_NUM_VOLHDRS && error == 0; ++zone) {
		hammer2_off_t off = hammer2_zone_offset(zone);

		if (off + HAMMER2_VOLUME_BYTES > size)
			break;
		error = v->be->ops->pwrite(v->be, vd, sizeof(*vd), off);
	}
	if (error == 0)
		error = v->be->ops->flush(v->be);
	free(vd);
	return error;
}
