/* Image file backend: buffered pread/pwrite, fdatasync barriers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "hammer2.h"
#include "hammer2_backend.h"

#define FD(be)	((int)(intptr_t)(be)->priv)

static int
file_pread(hammer2_backend_t *be, void *buf, size_t bytes, uint64_t off)
{
	return hammer2_fd_pread(FD(be), be->name, buf, bytes, off);
}

static int
file_preadv(hammer2_backend_t *be, const struct iovec *iov, int iovcnt,
	    uint64_t off)
{
	return hammer2_fd_preadv(FD(be), be->name, iov, iovcnt, off);
}

static int
file_pwrite(hammer2_backend_t *be, const void *buf, size_t bytes,
	    uint64_t off)
{
	return hammer2_fd_pwrite(FD(be), be->name, buf, bytes, off);
}

static int
file_pwritev(hammer2_backend_t *be, const struct iovec *iov, int iovcnt,
	     uint64_t off)
{
	return hammer2_fd_pwritev(FD(be), be->name, iov, iovcnt, off);
}

static int
file_flush(hammer2_backend_t *be)
{
	return hammer2_fd_sync(FD(be), be->name);
}

/* Punch a hole; a filesystem that cannot simply keeps the bytes. */
static int
file_trim(hammer2_backend_t *be, uint64_t off, uint64_t bytes)
{
	if (fallocate(FD(be), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)bytes) < 0 && errno != EOPNOTSUPP)
		return hammer2_seterr(errno, "%s: trim at 0x%llx failed: %s",
				      be->name, (unsigned long long)off,
				      strerror(errno));
	return 0;
}

/* A hole reads as zeros: newfs's boot and aux areas cost no space. */
static int
file_zero(hammer2_backend_t *be, uint64_t off, uint64_t bytes)
{
	if (fallocate(FD(be), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)bytes) == 0)
		return 0;
	if (errno == EOPNOTSUPP)
		return EOPNOTSUPP;
	return hammer2_seterr(errno, "%s: zeroing at 0x%llx failed: %s",
			      be->name, (unsigned long long)off,
			      strerror(errno));
}

static int
file_size(hammer2_backend_t *be, uint64_t *sizep)
{
	struct stat st;

	if (fstat(FD(be), &st) < 0)
		return hammer2_seterr(errno, "%s: %s", be->name, strerror(errno));
	*sizep = (uint64_t)st.st_size;
	return 0;
}

static int
file_resize(hammer2_backend_t *be, uint64_t size)
{
	if (ftruncate(FD(be), (off_t)size) < 0)
		return hammer2_seterr(errno, "%s: cannot size to %llu bytes: %s",
				      be->name, (unsigned long long)size,
				      strerror(errno));
	return 0;
}

static void
file_close(hammer2_backend_t *be)
{
	close(FD(be));
}

static const hammer2_backend_ops_t file_ops = {
	.kind = "file", .pread = file_pread, .pwrite = file_pwrite,
	.preadv = file_preadv, .pwritev = file_pwritev, .flush = file_flush,
	.trim = file_trim, .size = file_size, .resize = file_resize,
	.close = file_close, .zero = file_zero
};

static const char *
file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode))
		return "a character device";
	return "not a regular file";
}

int
hammer2_be_file_open(hammer2_backend_t *be, const char *path, int flags)
{
	int oflags = O_CLOEXEC | O_NONBLOCK |
		     ((flags & HAMMER2_BE_RDWR) ? O_RDWR : O_RDONLY);
	struct stat st;
	int error, fd;

	/* O_NONBLOCK: a FIFO or a tty must not hold the open up */
	if (flags & HAMMER2_BE_CREATE)
		oflags |= O_CREAT;
	fd = open(path, oflags, 0644);
	if (fd < 0) {
		/* a directory or socket fails here: say what it is */
		error = errno;
		if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
			return hammer2_seterr(EINVAL, "%s: %s, not an image or "
					      "block device", path,
					      file_kind(st.st_mode));
		return hammer2_seterr(error, "%s: %s", path, strerror(error));
	}
	if (fstat(fd, &st) < 0 ||
	    (S_ISREG(st.st_mode) &&
	     fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)) {
		error = errno;
		close(fd);
		return hammer2_seterr(error, "%s: %s", path, strerror(error));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return hammer2_seterr(EINVAL, "%s: %s, not an image or block "
				      "device", path, file_kind(st.st_mode));
	}
	be->ops = &file_ops;
	be->priv = (void *)(intptr_t)fd;
	return 0;
}
