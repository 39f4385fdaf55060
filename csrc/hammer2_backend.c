/*
 * Backend selection: parse a device URI and open the backend that serves
 * it.  Plain paths are typed by what they name (file or block device).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "hammer2.h"
#include "hammer2_backend.h"

int
hammer2_backend_open(const char *uri, int flags, hammer2_backend_t **bep)
{
	hammer2_backend_t *be;
	struct stat st;
	int error;

	*bep = NULL;
	be = calloc(1, sizeof(*be));
	if (be == NULL || (be->name = strdup(uri)) == NULL) {
		free(be);
		return hammer2_seterr(ENOMEM, "out of memory");
	}
	be->readonly = !(flags & HAMMER2_BE_RDWR);
	if (strncmp(uri, "nbd://", 6) == 0 || strncmp(uri, "nbd+unix://", 11) == 0)
		error = hammer2_be_nbd_open(be, uri, flags);
	else if (strncmp(uri, "nbd", 3) == 0 && strstr(uri, "://"))
		error = hammer2_seterr(EINVAL, "%s: unsupported NBD URI scheme "
				       "(nbd:// or nbd+unix:// only; no TLS)",
				       uri);
	else if (strncmp(uri, "mem:", 4) == 0)
		error = hammer2_be_mem_open(be, uri + 4, flags);
	else if (stat(uri, &st) == 0 && S_ISBLK(st.st_mode))
		error = hammer2_be_blk_open(be, uri, flags);
	else
		error = hammer2_be_file_open(be, uri, flags);
	if (error) {
		free(be->name);
		free(be);
		return error;
	}
	*bep = be;
	return 0;
}

void
hammer2_backend_close(hammer2_backend_t *be)
{
	if (be == NULL)
		return;
	be->ops->close(be);
	free(be->name);
	free(be);
}

int
hammer2_backend_trim(hammer2_backend_t *be, uint64_t off, uint64_t bytes)
{
	if (be->readonly)
		return hammer2_seterr(EROFS, "%s: opened read-only", be->name);
	return be->ops->trim(be, off, bytes);
}

int
hammer2_fd_pread(int fd, const char *name, void *buf, size_t bytes,
		 uint64_t off)
{
	struct iovec iov = { buf, bytes };

	return hammer2_fd_preadv(fd, name, &iov, 1, off);
}

int
hammer2_fd_pwrite(int fd, const char *name, const void *buf, size_t bytes,
		  uint64_t off)
{
	struct iovec iov = { (void *)buf, bytes };

	return hammer2_fd_pwritev(fd, name, &iov, 1, off);
}

/* A whole vectored transfer, retrying short ones. */
static int
fd_rwv(int fd, const char *name, int write, const struct iovec *iov,
       int iovcnt, uint64_t off)
{
	struct iovec v[HAMMER2_IOV_MAX], *p = v;

	if (iovcnt > HAMMER2_IOV_MAX)
		return hammer2_seterr(EINVAL, "%s: %d segments in one %s", name,
				      iovcnt, write ? "write" : "read");
	memcpy(v, iov, (size_t)iovcnt * sizeof(*v));
	while (iovcnt > 0) {
		ssize_t n = write ? pwritev(fd, p, iovcnt, (off_t)off) :
				    preadv(fd, p, iovcnt, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hammer2_seterr(errno, "%s: %s error at 0x%llx: %s",
					      name, write ? "write" : "read",
					      (unsigned long long)off,
					      strerror(errno));
		if (n == 0)
			return hammer2_seterr(EIO, write ?
					      "%s: short write at 0x%llx" :
					      "%s: device ended at 0x%llx "
					      "(shrunk while open?)", name,
					      (unsigned long long)off);
		off += (uint64_t)n;
		p = hammer2_iov_advance(p, &iovcnt, (size_t)n);
	}
	return 0;
}

int
hammer2_fd_preadv(int fd, const char *name, const struct iovec *iov,
		  int iovcnt, uint64_t off)
{
	return fd_rwv(fd, name, 0, iov, iovcnt, off);
}

int
hammer2_fd_pwritev(int fd, const char *name, const struct iovec *iov,
		   int iovcnt, uint64_t off)
{
	return fd_rwv(fd, name, 1, iov, iovcnt, off);
}

/* Consume n transferred bytes from an iovec array: the first segment left. */
struct iovec *
hammer2_iov_advance(struct iovec *iov, int *iovcntp, size_t n)
{
	while (*iovcntp > 0 && n >= iov->iov_len) {
		n -= iov->iov_len;
		++iov;
		--*iovcntp;
	}
	if (*iovcntp > 0) {
		iov->iov_base = (char *)iov->iov_base + n;
		iov->iov_len -= n;
	}
	return iov;
}

int
hammer2_fd_sync(int fd, const char *name)
{
	if (fdatasync(fd) < 0)
		return hammer2_seterr(errno, "%s: sync failed: %s", name,
				      strerror(errno));
	return 0;
}
