/*
 * Native NBD client backend: fixed newstyle handshake, NBD_OPT_GO with
 * the export name, simple replies, READ/WRITE/FLUSH/TRIM.
 *
 * One connection carries many requests at once: callers send under a
 * send lock and sleep on their own request; a receiver thread matches
 * replies to requests by handle and reads payloads straight into the
 * caller's buffer.  Every wait is bounded by the per-request timeout.  A
 * connection that fails (server gone, protocol violation, timeout) is
 * dead for good: every request then fails ENOTCONN and no reconnect is
 * attempted, so the node is seen as disconnected instead of hanging or
 * silently switching servers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <endian.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "hammer2.h"
#include "hammer2_backend.h"

#define NBD_MAGIC		0x4e42444d41474943ULL	/* "NBDMAGIC" */
#define NBD_OPTS_MAGIC		0x49484156454f5054ULL	/* "IHAVEOPT" */
#define NBD_OLDSTYLE_MAGIC	0x0000420281861253ULL
#define NBD_REP_MAGIC		0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC	0x25609513U
#define NBD_SIMPLE_REPLY_MAGIC	0x67446698U

#define NBD_FLAG_FIXED_NEWSTYLE	0x0001	/* handshake flags */
#define NBD_FLAG_NO_ZEROES	0x0002

#define NBD_FLAG_READ_ONLY	0x0002	/* transmission flags */
#define NBD_FLAG_SEND_FLUSH	0x0004
#define NBD_FLAG_SEND_TRIM	0x0020

#define NBD_OPT_GO		7
#define NBD_REP_ACK		1
#define NBD_REP_INFO		3
#define NBD_REP_FLAG_ERROR	0x80000000U
#define NBD_INFO_EXPORT		0
#define NBD_INFO_BLOCK_SIZE	3

#define NBD_CMD_READ		0
#define NBD_CMD_WRITE		1
#define NBD_CMD_DISC		2
#define NBD_CMD_FLUSH		3
#define NBD_CMD_TRIM		4

#define NBD_DEFAULT_PORT	"10809"
#define NBD_MAX_REQUEST		(32U << 20)
#define NBD_MAX_REPLIES		64	/* option replies to one NBD_OPT_GO */
#define NBD_DEFAULT_TIMEOUT_MS	30000

typedef struct nbd_req {
	struct nbd_req	*next;
	uint64_t	handle;
	struct iovec	*iov;		/* reads: where the payload goes */
	int		iovcnt;
	uint32_t	len;
	int		done;
	int		busy;		/* the receiver is filling buf */
	int		error;
	pthread_cond_t	cv;		/* its own: a reply wakes one caller */
} nbd_req_t;

typedef struct nbd {
	int		fd;
	int		timeout_ms;
	uint64_t	size;
	uint16_t	tflags;
	uint32_t	minblk;		/* the server's minimum block size */
	uint32_t	maxreq;
	pthread_mutex_t	lock;		/* below, and every request's state */
	pthread_mutex_t	sendlock;
	pthread_t	rx;
	int		rx_started;
	int		dead;
	char		why[160];	/* what killed the connection */
	uint64_t	next_handle;
	nbd_req_t	*inflight;
} nbd_t;

/* ---------------------------------------------------------- socket I/O */

static int
wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { fd, events, 0 };
	int n;

	do {
		n = poll(&p, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno;
	return n == 0 ? ETIMEDOUT : 0;
}

/*
 * Send all iov describes (consumed as it goes) in as few calls as the
 * socket takes; timeout_ms < 0 waits for ever.  It polls only when the
 * socket is full, and never blocks past the poll: a stalled peer meets
 * the timeout.
 */
static int
send_iov(int fd, struct iovec *iov, int iovcnt, int timeout_ms)
{
	int nowait = timeout_ms >= 0 ? MSG_DONTWAIT : 0;

	while (iovcnt > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | nowait);
		int error;

		if (n < 0 && errno == EAGAIN) {
			if ((error = wait_fd(fd, POLLOUT, timeout_ms)) != 0)
				return error;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)	/* the peer closed: one name for it */
			return errno == EPIPE ? ECONNRESET : errno;
		iov = hammer2_iov_advance(iov, &iovcnt, (size_t)n);
	}
	return 0;
}

/* Send or receive all of buf; timeout_ms < 0 waits for ever. */
static int
xfer_all(int fd, void *buf, size_t len, int sending, int timeout_ms)
{
	int nowait = timeout_ms >= 0 ? MSG_DONTWAIT : 0;
	size_t done = 0;

	if (sending) {
		struct iovec iov = { buf, len };

		return send_iov(fd, &iov, 1, timeout_ms);
	}
	while (done < len) {
		ssize_t n;
		int error;

		if (timeout_ms >= 0 &&
		    (error = wait_fd(fd, POLLIN, timeout_ms)))
			return error;
		n = recv(fd, (char *)buf + done, len - done, nowait);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return ECONNRESET;
		done += (size_t)n;
	}
	return 0;
}

/* Receive exactly the bytes iov describes (consumed as it goes). */
static int
recv_iov(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		ssize_t n = recvmsg(fd, &mh, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return ECONNRESET;
		iov = hammer2_iov_advance(iov, &iovcnt, (size_t)n);
	}
	return 0;
}

/* ----------------------------------------------------------- connect */

static int
connect_unix(const char *name, const char *path, int timeout_ms, int *fdp)
{
	struct sockaddr_un sa;
	int fd;

	(void)timeout_ms;	/* a unix connect does not block on a peer */
	if (strlen(path) >= sizeof(sa.sun_path))
		return hammer2_seterr(ENAMETOOLONG, "%s: socket path too long",
				      name);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return hammer2_seterr(errno, "%s: socket: %s", name,
				      strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int error = errno;

		close(fd);
		return hammer2_seterr(error, "%s: cannot connect to %s: %s",
				      name, path, strerror(error));
	}
	*fdp = fd;
	return 0;
}

static int
connect_tcp(const char *name, const char *host, const char *port,
	    int timeout_ms, int *fdp)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, error = ECONNREFUSED, rc, one = 1;
	socklen_t elen = sizeof(error);

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc)
		return hammer2_seterr(EHOSTUNREACH, "%s: cannot resolve %s: %s",
				      name, host, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
			    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			error = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			error = 0;
		else if (errno != EINPROGRESS)
			error = errno;
		else if ((error = wait_fd(fd, POLLOUT, timeout_ms)) == 0 &&
			 getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &elen) < 0)
			error = errno;
		if (error == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return hammer2_seterr(error, "%s: cannot connect to %s:%s: %s",
				      name, host, port, strerror(error));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*fdp = fd;
	return 0;
}

/* --------------------------------------------------------- handshake */

/* Big-endian fields of n bytes at any alignment (option payloads pack them). */
static void
put_be(uint8_t *p, uint64_t v, int n)
{
	while (n-- > 0) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; ++i)
		v = v << 8 | p[i];
	return v;
}

static int
opt_error(const char *name, const char *export, uint32_t type,
	  const char *msg)
{
	static const struct { uint32_t rep; int error; const char *what; } map[] = {
		{ 1, ENOTSUP,	 "the server does not support NBD_OPT_GO" },
		{ 2, EACCES,	 "refused by the server's policy" },
		{ 3, EINVAL,	 "invalid option" },
		{ 4, ENOTSUP,	 "not supported on the server's platform" },
		{ 5, ENOTSUP,	 "the server requires TLS (not supported)" },
		{ 6, ENOENT,	 "no such export" },
		{ 7, ESHUTDOWN,	 "the server is shutting down" },
		{ 8, ENOTSUP,	 "the server requires block size negotiation" },
		{ 9, E2BIG,	 "request too big" },
	};
	uint32_t code = type & ~NBD_REP_FLAG_ERROR;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); ++i)
		if (map[i].rep == code)
			return hammer2_seterr(map[i].error, "%s: export '%s': %s%s%s",
					      name, export, map[i].what,
					      *msg ? ": " : "", msg);
	return hammer2_seterr(EPROTO, "%s: export '%s': server error %u%s%s",
			      name, export, code, *msg ? ": " : "", msg);
}

static int
handshake(nbd_t *nbd, const char *name, const char *export)
{
	struct { uint64_t magic, opts; uint16_t flags; }
		__attribute__((packed)) hello;
	struct { uint64_t magic; uint32_t opt, type, len; }
		__attribute__((packed)) rep;
	size_t nlen = strlen(export);
	uint8_t data[1024];
	uint32_t cflags;
	uint8_t *opt;
	size_t olen;
	int t = nbd->timeout_ms, error, have_size = 0;

	if ((error = xfer_all(nbd->fd, &hello, sizeof(hello), 0, t)))
		goto ioerr;
	if (be64toh(hello.magic) != NBD_MAGIC)
		return hammer2_seterr(EPROTO, "%s: not an NBD server", name);
	if (be64toh(hello.opts) == NBD_OLDSTYLE_MAGIC)
		return hammer2_seterr(ENOTSUP, "%s: oldstyle NBD server "
				      "(newstyle required)", name);
	if (be64toh(hello.opts) != NBD_OPTS_MAGIC ||
	    !(be16toh(hello.flags) & NBD_FLAG_FIXED_NEWSTYLE))
		return hammer2_seterr(ENOTSUP, "%s: server lacks fixed newstyle "
				      "negotiation", name);
	cflags = htobe32(NBD_FLAG_FIXED_NEWSTYLE |
			 (be16toh(hello.flags) & NBD_FLAG_NO_ZEROES));
	if (nlen > 4096)
		return hammer2_seterr(ENAMETOOLONG, "%s: export name too long", name);
	olen = 16 + 4 + nlen + 2 + 2;
	if ((opt = malloc(olen)) == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	put_be(opt, NBD_OPTS_MAGIC, 8);
	put_be(opt + 8, NBD_OPT_GO, 4);
	put_be(opt + 12, olen - 16, 4);
	put_be(opt + 16, nlen, 4);
	memcpy(opt + 20, export, nlen);
	put_be(opt + 20 + nlen, 1, 2);
	put_be(opt + 22 + nlen, NBD_INFO_BLOCK_SIZE, 2);
	error = xfer_all(nbd->fd, &cflags, 4, 1, t);
	if (error == 0)
		error = xfer_all(nbd->fd, opt, olen, 1, t);
	free(opt);
	if (error)
		goto ioerr;
	for (int nrep = 0;; ++nrep) {
		uint32_t type, len;

		if (nrep == NBD_MAX_REPLIES)
			return hammer2_seterr(EPROTO, "%s: more than %d replies to "
					      "NBD_OPT_GO", name, NBD_MAX_REPLIES);
		if ((error = xfer_all(nbd->fd, &rep, sizeof(rep), 0, t)))
			goto ioerr;
		type = be32toh(rep.type);
		len = be32toh(rep.len);
		if (be64toh(rep.magic) != NBD_REP_MAGIC ||
		    be32toh(rep.opt) != NBD_OPT_GO || len >= sizeof(data))
			return hammer2_seterr(EPROTO, "%s: malformed option reply",
					      name);
		if ((error = xfer_all(nbd->fd, data, len, 0, t)))
			goto ioerr;
		data[len] = 0;
		if (type & NBD_REP_FLAG_ERROR)
			return opt_error(name, export, type, (char *)data);
		if (type == NBD_REP_ACK)
			break;
		if (type != NBD_REP_INFO || len < 2)
			continue;
		switch (get_be(data, 2)) {
		case NBD_INFO_EXPORT:
			if (len < 12)
				return hammer2_seterr(EPROTO, "%s: short export "
						      "info", name);
			nbd->size = get_be(data + 2, 8);
			nbd->tflags = (uint16_t)get_be(data + 10, 2);
			have_size = 1;
			break;
		case NBD_INFO_BLOCK_SIZE:
			if (len >= 14) {
				uint32_t max = (uint32_t)get_be(data + 10, 4);

				nbd->minblk = (uint32_t)get_be(data + 2, 4);
				if (max >= 4096 && max < nbd->maxreq)
					nbd->maxreq = max;
			}
			break;
		}
	}
	if (!have_size)
		return hammer2_seterr(EPROTO, "%s: server sent no export size",
				      name);
	return 0;
ioerr:
	return hammer2_seterr(error == ETIMEDOUT ? ETIMEDOUT : ENOTCONN,
			      "%s: handshake failed: %s", name,
			      error == ECONNRESET ? "server closed the "
			      "connection" : strerror(error));
}

/* ------------------------------------------------------ transmission */

/* Mark the connection dead (lock held); wakes every waiter. */
static void
nbd_kill(nbd_t *nbd, const char *why)
{
	if (nbd->dead)
		return;
	nbd->dead = 1;
	snprintf(nbd->why, sizeof(nbd->why), "%s", why);
	/*
	 * Abort a TCP connection outright: writes still queued would
	 * otherwise be delivered once the link is back, after a reconnect
	 * (the cluster's sync thread) has written newer data there.
	 */
	connect(nbd->fd, &(struct sockaddr){ .sa_family = AF_UNSPEC },
		sizeof(struct sockaddr));
	shutdown(nbd->fd, SHUT_RDWR);
	for (nbd_req_t *req = nbd->inflight; req; req = req->next)
		pthread_cond_signal(&req->cv);
}

static int
nbd_errno(uint32_t e)
{
	switch (e) {
	case 1:   return EPERM;
	case 5:   return EIO;
	case 12:  return ENOMEM;
	case 22:  return EINVAL;
	case 28:  return ENOSPC;
	case 75:  return EOVERFLOW;
	case 95:  return ENOTSUP;
	case 108: return ESHUTDOWN;
	}
	return EIO;
}

static void *
nbd_receiver(void *arg)
{
	nbd_t *nbd = arg;
	struct { uint32_t magic, error; uint64_t handle; } __attribute__((packed)) r;
	const char *why = NULL;

	while (why == NULL) {
		nbd_req_t *req;
		int error;

		error = xfer_all(nbd->fd, &r, sizeof(r), 0, -1);
		if (error) {
			why = error == ECONNRESET ? "server closed the connection" :
			      "connection lost";
			break;
		}
		pthread_mutex_lock(&nbd->lock);
		for (req = nbd->inflight; req; req = req->next)
			if (req->handle == r.handle && !req->done)
				break;
		if (be32toh(r.magic) != NBD_SIMPLE_REPLY_MAGIC || req == NULL) {
			why = "protocol error: unexpected reply";
			pthread_mutex_unlock(&nbd->lock);
			break;
		}
		req->error = r.error ? nbd_errno(be32toh(r.error)) : 0;
		if (req->iov && req->error == 0) {
			req->busy = 1;
			pthread_mutex_unlock(&nbd->lock);
			error = recv_iov(nbd->fd, req->iov, req->iovcnt);
			pthread_mutex_lock(&nbd->lock);
			req->busy = 0;
			if (error) {
				why = "connection lost in a read reply";
				pthread_cond_signal(&req->cv);
				pthread_mutex_unlock(&nbd->lock);
				break;
			}
		}
		req->done = 1;
		pthread_cond_signal(&req->cv);
		pthread_mutex_unlock(&nbd->lock);
	}
	pthread_mutex_lock(&nbd->lock);
	nbd_kill(nbd, why);
	pthread_mutex_unlock(&nbd->lock);
	return NULL;
}

static const char *
cmd_name(int cmd)
{
	static const char *names[] = { "read", "write", "disconnect", "flush",
				       "trim" };
	return names[cmd];
}

/*
 * One request of at most maxreq bytes; waits for its reply.  iov (at most
 * HAMMER2_IOV_MAX segments) is what a write sends, or where a read's
 * reply goes (consumed).
 */
static int
nbd_request(hammer2_backend_t *be, int cmd, struct iovec *iov, int iovcnt,
	    uint32_t len, uint64_t off)
{
	nbd_t *nbd = be->priv;
	struct { uint32_t magic; uint16_t flags, type; uint64_t handle, off;
		 uint32_t len; } __attribute__((packed)) hdr;
	struct iovec out[1 + HAMMER2_IOV_MAX];
	nbd_req_t req, **pp;
	pthread_condattr_t cattr;
	struct timespec deadline;
	int error = 0, rc = 0;

	memset(&req, 0, sizeof(req));
	/* deadlines on the monotonic clock: immune to wall-clock steps */
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&req.cv, &cattr);
	pthread_condattr_destroy(&cattr);
	if (cmd == NBD_CMD_READ) {
		req.iov = iov;
		req.iovcnt = iovcnt;
	}
	req.len = len;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += nbd->timeout_ms / 1000;
	deadline.tv_nsec += (long)(nbd->timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		++deadline.tv_sec;
		deadline.tv_nsec -= 1000000000;
	}

	pthread_mutex_lock(&nbd->lock);
	if (nbd->dead) {
		pthread_mutex_unlock(&nbd->lock);
		pthread_cond_destroy(&req.cv);
		goto dead;
	}
	req.handle = ++nbd->next_handle;
	req.next = nbd->inflight;
	nbd->inflight = &req;
	pthread_mutex_unlock(&nbd->lock);

	hdr.magic = htobe32(NBD_REQUEST_MAGIC);
	hdr.flags = 0;
	hdr.type = htobe16((uint16_t)cmd);
	hdr.handle = req.handle;	/* opaque to the server */
	hdr.off = htobe64(off);
	hdr.len = htobe32(len);
	out[0].iov_base = &hdr;
	out[0].iov_len = sizeof(hdr);
	if (cmd == NBD_CMD_WRITE)
		memcpy(out + 1, iov, (size_t)iovcnt * sizeof(*iov));
	pthread_mutex_lock(&nbd->sendlock);
	error = send_iov(nbd->fd, out, cmd == NBD_CMD_WRITE ? 1 + iovcnt : 1,
			 nbd->timeout_ms);
	pthread_mutex_unlock(&nbd->sendlock);

	pthread_mutex_lock(&nbd->lock);
	if (error)
		nbd_kill(nbd, error == ETIMEDOUT ? "send timed out" :
			 "connection lost while sending");
	while (!req.done && !nbd->dead && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&req.cv, &nbd->lock, &deadline);
	if (!req.done && !nbd->dead) {
		char why[80];

		snprintf(why, sizeof(why), "%s request timed out after %d ms",
			 cmd_name(cmd), nbd->timeout_ms);
		nbd_kill(nbd, why);
	}
	while (req.busy)	/* the receiver is failing out of our buffer */
		pthread_cond_wait(&req.cv, &nbd->lock);
	for (pp = &nbd->inflight; *pp != &req; pp = &(*pp)->next)
		;
	*pp = req.next;
	pthread_mutex_unlock(&nbd->lock);
	pthread_cond_destroy(&req.cv);
	if (!req.done)
		goto dead;
	if (req.error)
		return hammer2_seterr(req.error, "%s: NBD %s error at 0x%llx/%u: "
				      "%s", be->name, cmd_name(cmd),
				      (unsigned long long)off, len,
				      strerror(req.error));
	return 0;
dead:
	return hammer2_seterr(ENOTCONN, "%s: NBD %s at 0x%llx/%u failed: "
			      "disconnected (%s; not reconnecting)", be->name,
			      cmd_name(cmd), (unsigned long long)off, len,
			      nbd->why);
}

static int
nbd_rw(hammer2_backend_t *be, int cmd, void *buf, size_t bytes, uint64_t off)
{
	nbd_t *nbd = be->priv;
	int error = 0;

	if (off > nbd->size || nbd->size - off < bytes)
		return hammer2_seterr(EIO, "%s: %s at 0x%llx/%zu lies past the "
				      "end of the export (%llu bytes)", be->name,
				      cmd_name(cmd), (unsigned long long)off,
				      bytes, (unsigned long long)nbd->size);
	while (bytes > 0 && error == 0) {
		uint32_t n = bytes > nbd->maxreq ? nbd->maxreq : (uint32_t)bytes;
		struct iovec iov = { buf, n };

		error = nbd_request(be, cmd, &iov, 1, n, off);
		buf = (char *)buf + n;
		bytes -= n;
		off += n;
	}
	return error;
}

static int
nbd_pread(hammer2_backend_t *be, void *buf, size_t bytes, uint64_t off)
{
	return nbd_rw(be, NBD_CMD_READ, buf, bytes, off);
}

static int
nbd_pwrite(hammer2_backend_t *be, const void *buf, size_t bytes, uint64_t off)
{
	return nbd_rw(be, NBD_CMD_WRITE, (void *)buf, bytes, off);
}

/* One request for the whole range where it fits, else piece by piece. */
static int
nbd_rwv(hammer2_backend_t *be, int cmd, const struct iovec *iov, int iovcnt,
	uint64_t off)
{
	nbd_t *nbd = be->priv;
	struct iovec v[HAMMER2_IOV_MAX];
	size_t bytes = 0;
	int error = 0;

	for (int i = 0; i < iovcnt; ++i)
		bytes += iov[i].iov_len;
	if (iovcnt > HAMMER2_IOV_MAX || bytes > nbd->maxreq) {
		for (int i = 0; i < iovcnt && error == 0; ++i) {
			error = nbd_rw(be, cmd, iov[i].iov_base,
				       iov[i].iov_len, off);
			off += iov[i].iov_len;
		}
		return error;
	}
	if (off > nbd->size || nbd->size - off < bytes)
		return nbd_rw(be, cmd, NULL, bytes, off); /* the error */
	memcpy(v, iov, (size_t)iovcnt * sizeof(*v));
	return nbd_request(be, cmd, v, iovcnt, (uint32_t)bytes, off);
}

static int
nbd_preadv(hammer2_backend_t *be, const struct iovec *iov, int iovcnt,
	   uint64_t off)
{
	return nbd_rwv(be, NBD_CMD_READ, iov, iovcnt, off);
}

static int
nbd_pwritev(hammer2_backend_t *be, const struct iovec *iov, int iovcnt,
	    uint64_t off)
{
	return nbd_rwv(be, NBD_CMD_WRITE, iov, iovcnt, off);
}

static int
nbd_flush(hammer2_backend_t *be)
{
	nbd_t *nbd = be->priv;

	/* without SEND_FLUSH the server writes through: nothing to do */
	if (!(nbd->tflags & NBD_FLAG_SEND_FLUSH))
		return 0;
	return nbd_request(be, NBD_CMD_FLUSH, NULL, 0, 0, 0);
}

static int
nbd_trim(hammer2_backend_t *be, uint64_t off, uint64_t bytes)
{
	nbd_t *nbd = be->priv;
	int error = 0;

	if (!(nbd->tflags & NBD_FLAG_SEND_TRIM))
		return 0;	/* advisory */
	while (bytes > 0 && error == 0) {
		uint32_t n = bytes > nbd->maxreq ? nbd->maxreq : (uint32_t)bytes;

		error = nbd_request(be, NBD_CMD_TRIM, NULL, 0, n, off);
		bytes -= n;
		off += n;
	}
	return error;
}

static int
nbd_size(hammer2_backend_t *be, uint64_t *sizep)
{
	*sizep = ((nbd_t *)be->priv)->size;
	return 0;
}

static void
nbd_free(nbd_t *nbd)
{
	if (nbd->rx_started) {
		pthread_mutex_lock(&nbd->lock);
		nbd_kill(nbd, "closed");
		pthread_mutex_unlock(&nbd->lock);
		pthread_join(nbd->rx, NULL);
	}
	if (nbd->fd >= 0)
		close(nbd->fd);
	pthread_mutex_destroy(&nbd->lock);
	pthread_mutex_destroy(&nbd->sendlock);
	free(nbd);
}

static void
nbd_close(hammer2_backend_t *be)
{
	nbd_t *nbd = be->priv;
	struct { uint32_t magic; uint16_t flags, type; uint64_t handle, off;
		 uint32_t len; } __attribute__((packed)) hdr;

	/* a polite goodbye, so the server does not log a dropped client */
	memset(&hdr, 0, sizeof(hdr));
	hdr.magic = htobe32(NBD_REQUEST_MAGIC);
	hdr.type = htobe16(NBD_CMD_DISC);
	pthread_mutex_lock(&nbd->sendlock);
	if (!nbd->dead)
		xfer_all(nbd->fd, &hdr, sizeof(hdr), 1, 1000);
	pthread_mutex_unlock(&nbd->sendlock);
	nbd_free(nbd);
}

static const hammer2_backend_ops_t nbd_ops = {
	.kind = "nbd", .pread = nbd_pread, .pwrite = nbd_pwrite,
	.preadv = nbd_preadv, .pwritev = nbd_pwritev, .flush = nbd_flush,
	.trim = nbd_trim, .size = nbd_size, .close = nbd_close,
	/* the server works on several at once: the round trips overlap */
	.write_depth = 4
};

/* ------------------------------------------------------------- open */

/*
 * Value of key in a URI query string ("a=1&b=2") copied into out: 1, 0
 * when absent, -1 when longer than out holds (out gets what fits).
 */
static int
query_get(const char *query, const char *key, char *out, size_t outsize)
{
	size_t klen = strlen(key);

	for (const char *p = query; p && *p; ) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t vlen = len - klen - 1;
			size_t n = vlen < outsize ? vlen : outsize - 1;

			memcpy(out, p + klen + 1, n);
			out[n] = 0;
			return vlen < outsize ? 1 : -1;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

int
hammer2_be_nbd_open(hammer2_backend_t *be, const char *uri, int flags)
{
	int is_unix = strncmp(uri, "nbd+unix://", 11) == 0;
	const char *rest = uri + (is_unix ? 11 : 6);
	char host[256] = "", port[16] = NBD_DEFAULT_PORT, export[4097] = "";
	char socket_path[256] = "", tmo[32];
	const char *slash, *query, *colon;
	size_t len;
	nbd_t *nbd;
	int error, found;

	query = strchr(rest, '?');
	slash = strchr(rest, '/');
	if (slash == NULL || (query && query < slash))
		slash = query ? query : rest + strlen(rest);
	len = (size_t)(slash - rest);			/* authority */
	if (is_unix ? len != 0 : (len == 0 || len >= sizeof(host)))
		return hammer2_seterr(EINVAL, "%s: bad NBD URI (%s)", uri,
				      is_unix ? "nbd+unix:///EXPORT?socket=PATH" :
				      "nbd://HOST[:PORT]/EXPORT");
	memcpy(host, rest, len);
	if (!is_unix && (colon = strrchr(host, ':')) && !strchr(colon, ']')) {
		if (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(port))
			return hammer2_seterr(EINVAL, "%s: bad port", uri);
		strcpy(port, colon + 1);
		host[colon - host] = 0;
	}
	if (host[0] == '[') {				/* [v6addr] */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = 0;
	}
	if (*slash == '/') {
		len = query ? (size_t)(query - slash - 1) : strlen(slash + 1);
		if (len >= sizeof(export))
			return hammer2_seterr(ENAMETOOLONG, "%s: export name too "
					      "long", uri);
		memcpy(export, slash + 1, len);
	}
	found = query ? query_get(query + 1, "socket", socket_path,
				  sizeof(socket_path)) : 0;
	if (is_unix && found < 0)
		return hammer2_seterr(ENAMETOOLONG, "%s: socket path too long",
				      uri);
	if (is_unix && found == 0)
		return hammer2_seterr(EINVAL, "%s: nbd+unix needs ?socket=PATH",
				      uri);
	nbd = calloc(1, sizeof(*nbd));
	if (nbd == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	nbd->fd = -1;
	nbd->maxreq = NBD_MAX_REQUEST;
	nbd->timeout_ms = NBD_DEFAULT_TIMEOUT_MS;
	pthread_mutex_init(&nbd->lock, NULL);
	pthread_mutex_init(&nbd->sendlock, NULL);
	found = query ? query_get(query + 1, "timeout", tmo, sizeof(tmo)) : 0;
	if (found != 0) {
		double s = found > 0 ? atof(tmo) : 0;	/* too long: bad */

		if (!(s > 0 && s <= 3600)) {
			nbd_free(nbd);
			return hammer2_seterr(EINVAL, "%s: bad timeout '%s'",
					      uri, tmo);
		}
		nbd->timeout_ms = s < 0.001 ? 1 : (int)(s * 1000);
	}
	error = is_unix ? connect_unix(uri, socket_path, nbd->timeout_ms, &nbd->fd) :
			  connect_tcp(uri, host, port, nbd->timeout_ms, &nbd->fd);
	if (error == 0)
		error = handshake(nbd, uri, export);
	if (error == 0 && (flags & HAMMER2_BE_RDWR) &&
	    (nbd->tflags & NBD_FLAG_READ_ONLY))
		error = hammer2_seterr(EROFS, "%s: the export is read-only; cannot "
				       "open it for writing", uri);
	/* reads are of 64 KiB buffers, writes of blocks down to 1 KiB */
	if (error == 0 && nbd->minblk > ((flags & HAMMER2_BE_RDWR) ?
					 HAMMER2_ALLOC_MIN : HAMMER2_PBUFSIZE))
		error = hammer2_seterr(EINVAL, "%s: the export takes blocks of "
				       "%u bytes at least; HAMMER2 %s", uri,
				       nbd->minblk, (flags & HAMMER2_BE_RDWR) ?
				       "writes 1 KiB blocks" :
				       "reads 64 KiB buffers");
	if (error == 0 && (error = pthread_create(&nbd->rx, NULL, nbd_receiver,
						  nbd)) != 0)
		hammer2_seterr(error, "%s: cannot start the receiver", uri);
	if (error) {
		nbd_free(nbd);
		return error;
	}
	nbd->rx_started = 1;
	be->ops = &nbd_ops;
	be->priv = nbd;
	return 0;
}
