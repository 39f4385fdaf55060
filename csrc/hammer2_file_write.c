/*
 * File data modifications.  Up to 512 bytes live in the inode itself;
 * beyond that the file is a set of DATA blocks keyed by logical offset,
 * 64 KiB each except the one holding end-of-file, which is the smallest
 * power of two (>= 1 KiB) that covers it.  Blocks are held decompressed
 * while modified and encoded by the flush.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

#define LBLOCK		((hammer2_off_t)HAMMER2_PBUFSIZE)
#define LBASE(off)	((off) & ~(LBLOCK - 1))

/* Logical size of the block at lbase in a file of `size` bytes. */
static size_t
block_size(hammer2_off_t lbase, hammer2_off_t size)
{
	size_t n = HAMMER2_ALLOC_MIN;

	if (size >= lbase + LBLOCK)
		return LBLOCK;
	while (n < size - lbase)
		n <<= 1;
	return n;
}

/* The DATA block at lbase, created (zeroed) if absent; locked, modified. */
static int
block_get(hammer2_cluster_t *ip, hammer2_off_t lbase, size_t bytes,
	  hammer2_tid_t mtid, int create, hammer2_cluster_t **clusterp)
{
	const hammer2_inode_meta_t *meta = &hammer2_cluster_rdata(ip)->ipdata.meta;
	hammer2_cluster_t *cparent, *cluster;
	hammer2_key_t next;
	int error;

	*clusterp = NULL;
	cparent = hammer2_cluster_lookup_init(ip, 0);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, lbase, lbase, 0);
	error = cparent->error;
	if (cluster) {
		error = hammer2_cluster_resize(cluster, bytes, mtid);
	} else if (error == 0 && create) {
		error = hammer2_cluster_create(cparent, &cluster, lbase,
					       HAMMER2_PBUFRADIX,
					       HAMMER2_BREF_TYPE_DATA, bytes, mtid);
	}
	/* as in the kernel, every write takes the inode's current check */
	if (error == 0 && cluster)
		hammer2_cluster_setmethod_check(cluster,
			HAMMER2_DEC_ALGO(meta->check_algo));
	hammer2_cluster_lookup_done(cparent);
	if (error && cluster) {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
		cluster = NULL;
	}
	*clusterp = cluster;
	return error;
}

static void
block_put(hammer2_cluster_t *cluster)
{
	hammer2_cluster_modsync(cluster);
	hammer2_cluster_unlock(cluster);
	hammer2_cluster_drop(cluster);
}

/* Resize the block holding the old end-of-file for a new file size. */
static int
eof_block_fix(hammer2_cluster_t *ip, hammer2_off_t osize, hammer2_off_t nsize,
	      hammer2_tid_t mtid)
{
	hammer2_off_t lbase;
	hammer2_cluster_t *cluster;
	size_t want;
	int error;

	if (osize == 0)
		return 0;
	lbase = LBASE(osize - 1);
	want = nsize > lbase ? block_size(lbase, nsize) : 0;
	if (want == 0 || want == block_size(lbase, osize))
		return 0;
	error = block_get(ip, lbase, want, mtid, 0, &cluster);
	if (cluster)
		block_put(cluster);
	return error;
}

/* Move embedded data out to a first DATA block. */
static int
unembed(hammer2_cluster_t *ip, hammer2_tid_t mtid, hammer2_off_t nsize)
{
	hammer2_inode_data_t *ipd;
	hammer2_cluster_t *cluster;
	uint8_t saved[HAMMER2_EMBEDDED_BYTES];
	size_t n;
	int error;

	ipd = hammer2_cluster_modify_ip(ip, mtid, &error);
	if (ipd == NULL)
		return error;
	n = ipd->meta.size < sizeof(saved) ? (size_t)ipd->meta.size : sizeof(saved);
	memcpy(saved, ipd->u.data, n);
	memset(&ipd->u, 0, sizeof(ipd->u));
	ipd->meta.op_flags &= ~HAMMER2_OPFLAG_DIRECTDATA;
	hammer2_cluster_modsync(ip);
	if (n == 0)
		return 0;
	error = block_get(ip, 0, block_size(0, nsize), mtid, 1, &cluster);
	if (error)
		return error;
	memcpy(cluster->focus->data->buf, saved, n);
	block_put(cluster);
	return 0;
}

static int
write_blocks(hammer2_cluster_t *ip, hammer2_off_t off, const uint8_t *buf,
	     size_t len, hammer2_off_t nsize, hammer2_tid_t mtid)
{
	while (len > 0) {
		hammer2_off_t lbase = LBASE(off);
		size_t boff = (size_t)(off - lbase);
		size_t n = LBLOCK - boff < len ? LBLOCK - boff : len;
		hammer2_cluster_t *cluster;
		int error;

		error = block_get(ip, lbase, block_size(lbase, nsize), mtid, 1,
				  &cluster);
		if (error)
			return hammer2_preerr(error, "offset 0x%llx",
					      (unsigned long long)lbase);
		memcpy(cluster->focus->data->buf + boff, buf, n);
		block_put(cluster);
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

static int
file_get(hammer2_pfs_t *pfs, hammer2_tid_t inum, hammer2_cluster_t **ipp)
{
	int error = hammer2_inode_get(pfs, inum, ipp);

	if (error == 0 && hammer2_cluster_rdata(*ipp)->ipdata.meta.type ==
			  HAMMER2_OBJTYPE_DIRECTORY) {
		hammer2_cluster_drop(*ipp);
		return hammer2_seterr(EISDIR, "inode 0x%llx is a directory",
				      (unsigned long long)inum);
	}
	return error;
}

/* A write moves mtime and ctime, as POSIX wants of write(2). */
int
hammer2_file_write(hammer2_pfs_t *pfs, hammer2_tid_t inum, hammer2_off_t off,
		   const void *buf, size_t len)
{
	hammer2_tid_t mtid = hammer2_pfs_mtid(pfs);
	uint64_t now = hammer2_time_now();
	hammer2_inode_data_t *ipd;
	hammer2_cluster_t *ip;
	hammer2_off_t osize, nsize;
	int error;

	if (off > HAMMER2_FILE_MAX || len > HAMMER2_FILE_MAX - off)
		return hammer2_seterr(EFBIG, "a write of %zu bytes at %llu ends "
				      "past the largest file size (2^63-1)",
				      len, (unsigned long long)off);
	if ((error = file_get(pfs, inum, &ip)) != 0)
		return error;
	ipd = hammer2_cluster_modify_ip(ip, mtid, &error);
	if (ipd == NULL)
		goto out;
	osize = ipd->meta.size;
	nsize = off + len > osize ? off + len : osize;
	if (ipd->meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA) {
		if (nsize <= HAMMER2_EMBEDDED_BYTES) {
			memcpy(ipd->u.data + off, buf, len);
			goto done;
		}
		if ((error = unembed(ip, mtid, nsize)) != 0)
			goto out;
	} else if ((error = eof_block_fix(ip, osize, nsize, mtid)) != 0) {
		goto out;
	}
	error = write_blocks(ip, off, buf, len, nsize, mtid);
	if (error)
		goto out;
done:
	ipd = &ip->focus->data->ipdata;
	ipd->meta.size = nsize;
	ipd->meta.mtime = now;
	ipd->meta.ctime = now;
	error = hammer2_cluster_modsync(ip);
out:
	hammer2_cluster_drop(ip);
	return error ? hammer2_preerr(error, "inode 0x%llx",
				      (unsigned long long)inum) : 0;
}

/* Delete every block at or past lbase (shrinking truncate). */
static int
delete_from(hammer2_cluster_t *ip, hammer2_off_t lbase, hammer2_tid_t mtid)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_key_t next;
	int error = 0;

	cparent = hammer2_cluster_lookup_init(ip, 0);
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster = hammer2_cluster_lookup(cparent, &next, lbase, HAMMER2_KEY_MAX,
					 HAMMER2_LOOKUP_NODATA);
	while (cluster && error == 0) {
		error = hammer2_cluster_delete(cluster, mtid);
		cluster = hammer2_cluster_next(cparent, cluster, &next, lbase,
					       HAMMER2_KEY_MAX,
					       HAMMER2_LOOKUP_NODATA);
	}
	return hammer2_cluster_scan_done(cparent, cluster, error);
}

/* Truncation, whatever the size, moves mtime and ctime (as on Linux). */
int
hammer2_file_truncate(hammer2_pfs_t *pfs, hammer2_tid_t inum,
		      hammer2_off_t nsize)
{
	hammer2_tid_t mtid = hammer2_pfs_mtid(pfs);
	uint64_t now = hammer2_time_now();
	hammer2_inode_data_t *ipd;
	hammer2_cluster_t *ip, *cluster;
	hammer2_off_t osize;
	int error;

	if (nsize > HAMMER2_FILE_MAX)
		return hammer2_seterr(EFBIG, "size %llu is past the largest "
				      "file size (2^63-1)",
				      (unsigned long long)nsize);
	if ((error = file_get(pfs, inum, &ip)) != 0)
		return error;
	ipd = hammer2_cluster_modify_ip(ip, mtid, &error);
	if (ipd == NULL)
		goto out;
	osize = ipd->meta.size;
	if (ipd->meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA) {
		if (nsize <= HAMMER2_EMBEDDED_BYTES) {
			if (nsize < osize)
				memset(ipd->u.data + nsize, 0,
				       HAMMER2_EMBEDDED_BYTES - nsize);
			goto done;
		}
		error = unembed(ip, mtid, nsize);
	} else if (nsize < osize) {
		hammer2_off_t lbase = LBASE(nsize);

		/* blocks wholly past the end go; the straddling one shrinks */
		error = delete_from(ip, nsize == lbase ? lbase : lbase + LBLOCK,
				    mtid);
		if (error == 0 && nsize > lbase) {
			error = block_get(ip, lbase, block_size(lbase, nsize),
					  mtid, 0, &cluster);
			if (cluster) {
				size_t keep = (size_t)(nsize - lbase);

				memset(cluster->focus->data->buf + keep, 0,
				       cluster->focus->bytes - keep);
				block_put(cluster);
			}
		}
	} else {
		error = eof_block_fix(ip, osize, nsize, mtid);
	}
	if (error)
		goto out;
done:
	ipd = &ip->focus->data->ipdata;
	ipd->meta.size = nsize;
	ipd->meta.mtime = now;
	ipd->meta.ctime = now;
	error = hammer2_cluster_modsync(ip);
out:
	hammer2_cluster_drop(ip);
	return error ? hammer2_preerr(error, "inode 0x%llx",
				      (unsigned long long)inum) : 0;
}
