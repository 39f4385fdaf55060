/*
 * Import: copy a host directory tree into a PFS in one call, the job
 * makefs -t hammer2 does.  Files, directories, symlinks, fifos and
 * hardlinks (by st_dev/st_ino) with modes, owners and mtimes; all-zero
 * 64 KiB blocks are left as holes.  Each modification is admitted by
 * hammer2_space_reserve first, inside a write transaction, as the API's
 * own calls are; a commit every flush_every bytes bounds memory.
 * Directory modes and times are set after their contents.
 */
#define _GNU_SOURCE		/* O_PATH */
#include <limits.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hammer2_cluster.h"
#include "hammer2_xport.h"

#define IMPORT_CHUNK	(4u << 20)	/* host read size */
#define IMPORT_DEPTH	512		/* each level holds a descriptor */

typedef struct import_ctx {
	hammer2_pfs_t	*pfs;
	uint64_t	flush_every;
	uint64_t	dirty;
	uint8_t		*buf;
	char		path[PATH_MAX];	/* host path, for messages */
	size_t		plen;
	hammer2_keymap_t links;		/* (st_dev, st_ino): inum, hardlinks */
	hammer2_import_stats_t *st;
} import_ctx_t;

static int
path_push(import_ctx_t *x, const char *name, size_t *oldp)
{
	size_t n = strlen(name);

	*oldp = x->plen;
	if (x->plen + 1 + n + 1 > sizeof(x->path))
		return hammer2_seterr(ENAMETOOLONG, "%s/%s: path too long",
				      x->path, name);
	x->path[x->plen] = '/';
	memcpy(x->path + x->plen + 1, name, n + 1);
	x->plen += 1 + n;
	return 0;
}

static void
path_pop(import_ctx_t *x, size_t old)
{
	x->plen = old;
	x->path[old] = 0;
}

static int
host_err(import_ctx_t *x, int error, const char *what)
{
	return hammer2_seterr(error, "%s: %s: %s", x->path, what,
			      strerror(error));
}

static uint64_t
mtime_us(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000000 +
	       (uint64_t)st->st_mtim.tv_nsec / 1000;
}

/*
 * Modifications, each admitted first (as the API's own calls are) inside
 * a write transaction; a cluster's writes also need a quorum of nodes.
 */
static int
begin(import_ctx_t *x, uint64_t bytes, int kind)
{
	int error;

	hammer2_pfs_trans_begin(x->pfs, 1);
	error = hammer2_cluster_writable(x->pfs->devs, x->pfs->ndevs);
	if (error == 0)
		error = hammer2_space_reserve(x->pfs, bytes, kind);
	if (error)
		hammer2_pfs_trans_end(x->pfs);
	return error;
}

static int
end(import_ctx_t *x, int error, const char *what)
{
	hammer2_pfs_trans_end(x->pfs);
	return error ? hammer2_preerr(error, "%s: %s", x->path, what) : 0;
}

static int
create(import_ctx_t *x, hammer2_tid_t dinum, const char *name,
       const struct stat *st, int type, hammer2_tid_t *inump)
{
	hammer2_attr_t a;
	int error;

	memset(&a, 0, sizeof(a));
	a.type = (uint8_t)type;
	a.mode = type == HAMMER2_OBJTYPE_SOFTLINK ? 0777 : st->st_mode & 07777;
	a.uid = st->st_uid;
	a.gid = st->st_gid;
	if ((error = begin(x, 0, HAMMER2_SPACE_GROWS)) != 0)
		return hammer2_preerr(error, "%s", x->path);
	error = hammer2_inode_create(x->pfs, dinum, (const uint8_t *)name,
				     strlen(name), &a, inump);
	return end(x, error, "create");
}

static int
setattr(import_ctx_t *x, hammer2_tid_t inum, int mask, const struct stat *st)
{
	hammer2_attr_t a;
	int error;

	memset(&a, 0, sizeof(a));
	a.mask = mask;
	a.mode = st->st_mode & 07777;
	a.mtime = mtime_us(st);
	if ((error = begin(x, 0, HAMMER2_SPACE_CHANGES)) != 0)
		return hammer2_preerr(error, "%s", x->path);
	return end(x, hammer2_inode_setattr(x->pfs, inum, &a), "setattr");
}

static int
write_run(import_ctx_t *x, hammer2_tid_t inum, hammer2_off_t off,
	  const uint8_t *p, size_t n)
{
	int error;

	if ((error = begin(x, n, HAMMER2_SPACE_GROWS)) != 0)
		return hammer2_preerr(error, "%s", x->path);
	return end(x, hammer2_file_write(x->pfs, inum, off, p, n), "write");
}

/* A commit every flush_every bytes keeps memory bounded. */
static int
account(import_ctx_t *x, uint64_t bytes)
{
	int error;

	x->dirty += bytes;
	if (x->dirty < x->flush_every)
		return 0;
	x->dirty = 0;
	hammer2_pfs_trans_begin(x->pfs, 1);
	error = hammer2_space_commit(x->pfs);
	return end(x, error, "commit");
}

/* The file's data, written around all-zero 64 KiB blocks (holes). */
static int
copy_data(import_ctx_t *x, int fd, hammer2_tid_t inum, const struct stat *st)
{
	hammer2_off_t off = 0, end_written = 0;
	ssize_t got;
	size_t pos, run, len;
	int error;

	while ((got = read(fd, x->buf, IMPORT_CHUNK)) > 0) {
		len = (size_t)got;
		/* runs of blocks holding data, each one write */
		for (pos = 0; (run = hammer2_data_run(x->buf, len, &pos)) != 0;
		     pos += run) {
			error = write_run(x, inum, off + pos, x->buf + pos, run);
			if (error)
				return error;
			end_written = off + pos + run;
		}
		off += len;
		if ((error = account(x, len)) != 0)
			return error;
	}
	if (got < 0)
		return host_err(x, errno, "read");
	if (st->st_size > 0 && (hammer2_off_t)st->st_size != end_written) {
		if ((error = begin(x, 0, HAMMER2_SPACE_CHANGES)) != 0)
			return hammer2_preerr(error, "%s", x->path);
		error = hammer2_file_truncate(x->pfs, inum,
					      (hammer2_off_t)st->st_size);
		if ((error = end(x, error, "truncate")) != 0)
			return error;
	}
	x->st->bytes += (uint64_t)st->st_size;
	return 0;
}

/* One entry that is not a directory. */
static int
import_entry(import_ctx_t *x, int dfd, const char *name, hammer2_tid_t dinum,
	     const struct stat *st)
{
	hammer2_tid_t inum;
	char target[HAMMER2_SYMLINK_MAX + 2];
	ssize_t tlen;
	int error, fd;

	if (st->st_nlink > 1 &&
	    (inum = hammer2_keymap_get(&x->links, st->st_dev, st->st_ino))) {
		if ((error = begin(x, 0, HAMMER2_SPACE_CHANGES)) != 0)
			return hammer2_preerr(error, "%s", x->path);
		error = hammer2_inode_link(x->pfs, inum, dinum,
					   (const uint8_t *)name, strlen(name));
		return end(x, error, "link");
	}
	if (S_ISREG(st->st_mode)) {
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return host_err(x, errno, "open");
		error = create(x, dinum, name, st, HAMMER2_OBJTYPE_REGFILE,
			       &inum);
		if (error == 0)
			error = copy_data(x, fd, inum, st);
		close(fd);
	} else if (S_ISLNK(st->st_mode)) {
		tlen = readlinkat(dfd, name, target, sizeof(target));
		if (tlen < 0)
			return host_err(x, errno, "readlink");
		error = hammer2_symlink_validate((const uint8_t *)target,
						 (size_t)tlen);
		if (error)
			return hammer2_preerr(error, "%s", x->path);
		error = create(x, dinum, name, st, HAMMER2_OBJTYPE_SOFTLINK,
			       &inum);
		if (error == 0)
			error = write_run(x, inum, 0, (uint8_t *)target,
					  (size_t)tlen);
	} else if (S_ISFIFO(st->st_mode)) {
		error = create(x, dinum, name, st, HAMMER2_OBJTYPE_FIFO, &inum);
	} else {
		return 0;	/* device nodes and sockets are not imported */
	}
	if (error == 0)
		error = setattr(x, inum, HAMMER2_SETATTR_MTIME, st);
	if (error == 0 && st->st_nlink > 1)
		error = hammer2_keymap_put(&x->links, st->st_dev, st->st_ino,
					   (uintptr_t)inum);
	if (error == 0)
		x->st->files++;
	return error;
}

typedef struct import_name {
	char		*name;
	struct stat	st;
	hammer2_tid_t	inum;		/* directories: the one created */
} import_name_t;

/* The entries of a host directory, lstat'ed. */
static int
list_dir(import_ctx_t *x, int fd, import_name_t **namesp, size_t *countp)
{
	import_name_t *v = NULL, *p;
	struct dirent *de;
	size_t n = 0, cap = 0;
	DIR *d;
	int dupfd, error = 0;

	if ((dupfd = dup(fd)) < 0 || (d = fdopendir(dupfd)) == NULL) {
		error = host_err(x, errno, "opendir");
		if (dupfd >= 0)
			close(dupfd);
		return error;
	}
	while (error == 0 && (errno = 0, de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap * 2 + 64;
			if ((p = realloc(v, cap * sizeof(*v))) == NULL) {
				error = hammer2_seterr(ENOMEM, "out of memory");
				break;
			}
			v = p;
		}
		v[n].inum = 0;
		if ((v[n].name = strdup(de->d_name)) == NULL)
			error = hammer2_seterr(ENOMEM, "out of memory");
		else if (fstatat(fd, de->d_name, &v[n].st, AT_SYMLINK_NOFOLLOW))
			error = hammer2_seterr(errno, "%s/%s: %s", x->path,
					       de->d_name, strerror(errno));
		n += v[n].name != NULL;
	}
	if (error == 0 && errno)
		error = host_err(x, errno, "readdir");
	closedir(d);
	*namesp = v;
	*countp = n;
	return error;
}

/*
 * A directory's subdirectories are created first, then its other
 * entries, then each subdirectory is filled (os.walk's order).
 */
static int
import_dir(import_ctx_t *x, int fd, hammer2_tid_t dinum, int depth)
{
	import_name_t *v = NULL;
	size_t n = 0, old;
	int error, sfd;

	if (depth >= IMPORT_DEPTH)
		return hammer2_seterr(ELOOP, "%s: directories nested deeper "
				      "than %d", x->path, IMPORT_DEPTH);
	error = list_dir(x, fd, &v, &n);
	for (int pass = 0; pass < 3 && error == 0; ++pass) {
		for (size_t i = 0; i < n && error == 0; ++i) {
			if ((pass != 1) != !!S_ISDIR(v[i].st.st_mode))
				continue;
			if ((error = path_push(x, v[i].name, &old)) != 0)
				break;
			if (pass == 0) {
				error = create(x, dinum, v[i].name, &v[i].st,
					       HAMMER2_OBJTYPE_DIRECTORY,
					       &v[i].inum);
			} else if (pass == 1) {
				error = import_entry(x, fd, v[i].name, dinum,
						     &v[i].st);
			} else if ((sfd = openat(fd, v[i].name, O_RDONLY |
						 O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC)) < 0) {
				error = host_err(x, errno, "open");
			} else {
				error = import_dir(x, sfd, v[i].inum, depth + 1);
				close(sfd);
				/* times last: adding entries moves them */
				if (error == 0)
					error = setattr(x, v[i].inum,
							HAMMER2_SETATTR_MODE |
							HAMMER2_SETATTR_MTIME,
							&v[i].st);
			}
			path_pop(x, old);
		}
	}
	for (size_t i = 0; i < n; ++i)
		free(v[i].name);
	free(v);
	return error;
}

int
hammer2_import(hammer2_pfs_t *pfs, const char *src, hammer2_tid_t dinum,
	       uint64_t flush_every, hammer2_import_stats_t *st)
{
	import_ctx_t x;
	struct stat top;
	int error, fd;

	memset(&x, 0, sizeof(x));
	memset(st, 0, sizeof(*st));
	x.pfs = pfs;
	x.flush_every = flush_every;
	x.st = st;
	if (strlen(src) >= sizeof(x.path))
		return hammer2_seterr(ENAMETOOLONG, "%s: path too long", src);
	strcpy(x.path, src);
	x.plen = strlen(src);
	if ((fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &top)) {
		error = host_err(&x, errno, "open");
		if (fd >= 0)
			close(fd);
		return error;
	}
	if ((x.buf = malloc(IMPORT_CHUNK)) == NULL)
		error = hammer2_seterr(ENOMEM, "out of memory");
	else
		error = import_dir(&x, fd, dinum, 0);
	/* the destination's mode too, unless it is the PFS root */
	if (error == 0)
		error = setattr(&x, dinum, HAMMER2_SETATTR_MTIME |
				(dinum != pfs->info.inum ?
				 HAMMER2_SETATTR_MODE : 0), &top);
	close(fd);
	free(x.buf);
	hammer2_keymap_free(&x.links, NULL);
	return error;
}
