/*
 * Device backends: what lies beneath hammer2_devio.c's choke point.  A
 * device URI picks one:
 *
 *   PATH                          image file (or a block device, by type)
 *   /dev/loopN, /dev/sdX ...      block device, O_DIRECT where it allows
 *   nbd+unix:///EXPORT?socket=P   NBD export over a unix socket
 *   nbd://HOST[:PORT]/EXPORT      NBD export over TCP
 *   mem:NAME                      process-wide memory device (tests)
 *
 * NBD URIs take `timeout=SECONDS` (per request, default 30).  Every op
 * returns 0 or a positive errno with hammer2_seterr() naming the device
 * and offset.  ENOTCONN means the backend is gone for good (server died,
 * connection lost): the upper layers treat the node as disconnected.
 */
#ifndef HAMMER2_BACKEND_H_
#define HAMMER2_BACKEND_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct hammer2_backend hammer2_backend_t;

typedef struct hammer2_backend_ops {
	const char	*kind;
	int	(*pread)(hammer2_backend_t *be, void *buf, size_t bytes,
			 uint64_t off);
	int	(*pwrite)(hammer2_backend_t *be, const void *buf, size_t bytes,
			  uint64_t off);
	/* one contiguous device range into several buffers; NULL: by pieces */
	int	(*preadv)(hammer2_backend_t *be, const struct iovec *iov,
			  int iovcnt, uint64_t off);
	/* several buffers to one contiguous device range; NULL: by pieces */
	int	(*pwritev)(hammer2_backend_t *be, const struct iovec *iov,
			   int iovcnt, uint64_t off);
	int	(*flush)(hammer2_backend_t *be);
	int	(*trim)(hammer2_backend_t *be, uint64_t off, uint64_t bytes);
	int	(*size)(hammer2_backend_t *be, uint64_t *sizep);
	int	(*resize)(hammer2_backend_t *be, uint64_t size); /* NULL: fixed */
	void	(*close)(hammer2_backend_t *be);
	/* a range made to read as zeros without writing it (a hole); NULL,
	 * or EOPNOTSUPP: the caller writes the zeros */
	int	(*zero)(hammer2_backend_t *be, uint64_t off, uint64_t bytes);
	/* write requests worth having in flight at once (0: one) */
	int	write_depth;
} hammer2_backend_ops_t;

struct hammer2_backend {
	const hammer2_backend_ops_t *ops;
	char		*name;		/* the URI, for messages */
	int		readonly;
	void		*priv;
};

#define HAMMER2_BE_RDWR		0x0001
#define HAMMER2_BE_CREATE	0x0002	/* image files: create if missing */

int hammer2_backend_open(const char *uri, int flags, hammer2_backend_t **bep);
void hammer2_backend_close(hammer2_backend_t *be);
int hammer2_backend_trim(hammer2_backend_t *be, uint64_t off, uint64_t bytes);

/* Per-kind constructors (be->name is set by the caller). */
int hammer2_be_file_open(hammer2_backend_t *be, const char *path, int flags);
int hammer2_be_blk_open(hammer2_backend_t *be, const char *path, int flags);
int hammer2_be_mem_open(hammer2_backend_t *be, const char *name, int flags);
int hammer2_be_nbd_open(hammer2_backend_t *be, const char *uri, int flags);

/* Memory devices live until deleted (tests format, close and reopen them). */
int hammer2_mem_create(const char *name, uint64_t size);
int hammer2_mem_create_from(const char *name, const char *path);
int hammer2_mem_delete(const char *name);

/* Whole-range I/O on a file descriptor, retrying short transfers. */
int hammer2_fd_pread(int fd, const char *name, void *buf, size_t bytes,
		     uint64_t off);
int hammer2_fd_pwrite(int fd, const char *name, const void *buf,
		      size_t bytes, uint64_t off);
int hammer2_fd_preadv(int fd, const char *name, const struct iovec *iov,
		      int iovcnt, uint64_t off);
int hammer2_fd_pwritev(int fd, const char *name, const struct iovec *iov,
		       int iovcnt, uint64_t off);
int hammer2_fd_sync(int fd, const char *name);
struct iovec *hammer2_iov_advance(struct iovec *iov, int *iovcntp, size_t n);

#endif /* HAMMER2_BACKEND_H_ */
