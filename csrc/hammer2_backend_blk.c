/*
 * Block device backend (loop devices, disks): O_DIRECT so the page cache
 * neither doubles the DIO cache nor hides a device that went away.  I/O
 * that is not sector aligned (1 KiB blocks on a 4 KiB-sector device, an
 * unaligned caller buffer) goes through an aligned bounce buffer; partial
 * sector writes read-modify-write under a lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include "hammer2.h"
#include "hammer2_backend.h"

#define MEM_ALIGN	4096

typedef struct blkdev {
	int		fd;
	int		direct;		/* opened O_DIRECT */
	unsigned	sector;		/* logical block size */
	pthread_mutex_t	rmw;		/* partial-sector writes */
} blkdev_t;

static int
aligned(blkdev_t *bd, const void *buf, size_t bytes, uint64_t off)
{
	if (!bd->direct)
		return 1;
	return ((uintptr_t)buf % MEM_ALIGN) == 0 && bytes % bd->sector == 0 &&
	       off % bd->sector == 0;
}

/* Sector-aligned span [*beg, *beg + *len) covering [off, off + bytes). */
static void *
bounce(blkdev_t *bd, const char *name, size_t bytes, uint64_t off,
       uint64_t *beg, size_t *len)
{
	void *buf;

	*beg = off - off % bd->sector;
	*len = (size_t)(off + bytes - *beg + bd->sector - 1) / bd->sector *
	       bd->sector;
	if (posix_memalign(&buf, MEM_ALIGN, *len)) {
		hammer2_seterr(ENOMEM, "%s: out of memory for a bounce buffer",
			       name);
		return NULL;
	}
	return buf;
}

static int
blk_pread(hammer2_backend_t *be, void *buf, size_t bytes, uint64_t off)
{
	blkdev_t *bd = be->priv;
	uint64_t beg;
	size_t len;
	void *tmp;
	int error;

	if (aligned(bd, buf, bytes, off))
		return hammer2_fd_pread(bd->fd, be->name, buf, bytes, off);
	if ((tmp = bounce(bd, be->name, bytes, off, &beg, &len)) == NULL)
		return ENOMEM;
	error = hammer2_fd_pread(bd->fd, be->name, tmp, len, beg);
	if (error == 0)
		memcpy(buf, (char *)tmp + (off - beg), bytes);
	free(tmp);
	return error;
}

static int
blk_pwrite(hammer2_backend_t *be, const void *buf, size_t bytes, uint64_t off)
{
	blkdev_t *bd = be->priv;
	uint64_t beg;
	size_t len;
	void *tmp;
	int error = 0, partial;

	if (aligned(bd, buf, bytes, off))
		return hammer2_fd_pwrite(bd->fd, be->name, buf, bytes, off);
	if ((tmp = bounce(bd, be->name, bytes, off, &beg, &len)) == NULL)
		return ENOMEM;
	partial = beg != off || len != bytes;	/* else only the buffer is odd */
	if (partial) {
		pthread_mutex_lock(&bd->rmw);
		error = hammer2_fd_pread(bd->fd, be->name, tmp, len, beg);
	}
	if (error == 0) {
		memcpy((char *)tmp + (off - beg), buf, bytes);
		error = hammer2_fd_pwrite(bd->fd, be->name, tmp, len, beg);
	}
	if (partial)
		pthread_mutex_unlock(&bd->rmw);
	free(tmp);
	return error;
}

/* One vectored transfer where every piece suits O_DIRECT, else by pieces. */
static int
blk_rwv(hammer2_backend_t *be, int write, const struct iovec *iov, int iovcnt,
	uint64_t off)
{
	blkdev_t *bd = be->priv;
	uint64_t pos = off;
	int error = 0, direct = 1;

	for (int i = 0; i < iovcnt; ++i) {
		direct &= aligned(bd, iov[i].iov_base, iov[i].iov_len, pos);
		pos += iov[i].iov_len;
	}
	if (direct)
		return write ? hammer2_fd_pwritev(bd->fd, be->name, iov, iovcnt,
						  off) :
			       hammer2_fd_preadv(bd->fd, be->name, iov, iovcnt,
						 off);
	for (int i = 0; i < iovcnt && error == 0; ++i) {
		error = write ? blk_pwrite(be, iov[i].iov_base, iov[i].iov_len,
					   off) :
				blk_pread(be, iov[i].iov_base, iov[i].iov_len,
					  off);
		off += iov[i].iov_len;
	}
	return error;
}

static int
blk_preadv(hammer2_backend_t *be, const struct iovec *iov, int iovcnt,
	   uint64_t off)
{
	return blk_rwv(be, 0, iov, iovcnt, off);
}

static int
blk_pwritev(hammer2_backend_t *be, const struct iovec *iov, int iovcnt,
	    uint64_t off)
{
	return blk_rwv(be, 1, iov, iovcnt, off);
}

static int
blk_flush(hammer2_backend_t *be)
{
	return hammer2_fd_sync(((blkdev_t *)be->priv)->fd, be->name);
}

static int
blk_trim(hammer2_backend_t *be, uint64_t off, uint64_t bytes)
{
	blkdev_t *bd = be->priv;
	uint64_t range[2];

	/* only whole sectors inside the range may be discarded */
	range[0] = (off + bd->sector - 1) / bd->sector * bd->sector;
	if (off + bytes <= range[0])
		return 0;
	range[1] = (off + bytes - range[0]) / bd->sector * bd->sector;
	if (range[1] && ioctl(bd->fd, BLKDISCARD, range) < 0 &&
	    errno != EOPNOTSUPP)
		return hammer2_seterr(errno, "%s: discard at 0x%llx failed: %s",
				      be->name, (unsigned long long)off,
				      strerror(errno));
	return 0;
}

static int
blk_size(hammer2_backend_t *be, uint64_t *sizep)
{
	if (ioctl(((blkdev_t *)be->priv)->fd, BLKGETSIZE64, sizep) < 0)
		return hammer2_seterr(errno, "%s: cannot get device size: %s",
				      be->name, strerror(errno));
	return 0;
}

static void
blk_close(hammer2_backend_t *be)
{
	blkdev_t *bd = be->priv;

	close(bd->fd);
	pthread_mutex_destroy(&bd->rmw);
	free(bd);
}

static const hammer2_backend_ops_t blk_ops = {
	.kind = "block device", .pread = blk_pread, .pwrite = blk_pwrite,
	.preadv = blk_preadv, .pwritev = blk_pwritev, .flush = blk_flush,
	.trim = blk_trim, .size = blk_size, .close = blk_close
};

int
hammer2_be_blk_open(hammer2_backend_t *be, const char *path, int flags)
{
	int rw = flags & HAMMER2_BE_RDWR;
	blkdev_t *bd;
	int ro = 0, ssz = 512;

	bd = calloc(1, sizeof(*bd));
	if (bd == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	bd->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (bd->fd < 0) {
		free(bd);
		return hammer2_seterr(errno, "%s: %s", path, strerror(errno));
	}
	if (ioctl(bd->fd, BLKROGET, &ro) == 0 && ro && rw) {
		close(bd->fd);
		free(bd);
		return hammer2_seterr(EROFS, "%s: the block device is read-only; "
				      "cannot open it for writing", path);
	}
	if (ioctl(bd->fd, BLKSSZGET, &ssz) < 0 || ssz < 512)
		ssz = 512;
	close(bd->fd);
	bd->sector = (unsigned)ssz;
	bd->direct = 1;
	bd->fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_DIRECT);
	if (bd->fd < 0 && errno == EINVAL) {	/* no direct I/O here */
		bd->direct = 0;
		bd->fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	}
	if (bd->fd < 0) {
		int error = errno;

		free(bd);
		return hammer2_seterr(error, "%s: %s%s", path, strerror(error),
				      error == EROFS || error == EACCES ?
				      " (read-only device?)" : "");
	}
	pthread_mutex_init(&bd->rmw, NULL);
	be->ops = &blk_ops;
	be->priv = bd;
	return 0;
}
