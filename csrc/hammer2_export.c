/*
 * Export: copy a PFS tree out to a host directory in one call, as a
 * restore would.  The image is untrusted: every name is validated before
 * it reaches the host, every entry is made relative to its directory's
 * descriptor (openat, mkdirat, symlinkat, linkat) and nothing is opened
 * through a symlink (O_NOFOLLOW), so nothing is written outside DEST.
 * Only data extents are read: holes stay holes however large a size an
 * inode claims.  Directory modes and times are set after their contents.
 */
#define _GNU_SOURCE		/* O_PATH */
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hammer2.h"
#include "hammer2_xport.h"

#define EXPORT_CHUNK	(4u << 20)	/* read size */
#define EXPORT_DEPTH	512		/* each level holds a descriptor */

typedef struct export_ctx {
	hammer2_pfs_t	*pfs;
	int		rootfd;
	int		as_root;
	uint8_t		*buf;
	char		path[PATH_MAX];	/* relative to DEST, for messages */
	size_t		plen;
	hammer2_keymap_t done;		/* inum: path first exported at */
	uint64_t	count;
} export_ctx_t;

/* Append "/name" to the current path; returns the old length. */
static int
path_push(export_ctx_t *x, const hammer2_dirent_t *ent, size_t *oldp)
{
	*oldp = x->plen;
	if (x->plen + 1 + ent->namlen + 1 > sizeof(x->path))
		return hammer2_seterr(ENAMETOOLONG, "%.*s/%.*s: path longer "
				      "than %d bytes", (int)x->plen, x->path,
				      (int)ent->namlen, ent->name, PATH_MAX);
	x->path[x->plen] = '/';
	memcpy(x->path + x->plen + 1, ent->name, ent->namlen);
	x->plen += 1 + ent->namlen;
	x->path[x->plen] = 0;
	return 0;
}

/* The PFS path being exported, for messages. */
static const char *
where(const export_ctx_t *x)
{
	return x->plen ? x->path : "/";
}

static int
host_err(export_ctx_t *x, int error, const char *what)
{
	if (error == ELOOP)
		return hammer2_seterr(EINVAL, "%s: a symlink already in DEST "
				      "would lead outside it, not exported",
				      where(x));
	return hammer2_seterr(error, "%s: %s: %s", where(x), what,
			      strerror(error));
}

/*
 * An inode exported (a directory, or a file with more than one link):
 * the path it was first exported at, relative to DEST.
 */
static const char *
done_path(export_ctx_t *x, hammer2_tid_t inum)
{
	return (const char *)hammer2_keymap_get(&x->done, inum, 0);
}

static int
done_add(export_ctx_t *x, hammer2_tid_t inum, const char *path)
{
	char *p = strdup(path);
	int error;

	if (p == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	if ((error = hammer2_keymap_put(&x->done, inum, 0, (uintptr_t)p)))
		free(p);
	return error;
}

/*
 * The directory holding a path exported earlier, opened a component at
 * a time without following a symlink.
 */
static int
open_parent(export_ctx_t *x, const char *rel, const char **namep)
{
	char comp[HAMMER2_NAME_MAX + 1];
	const char *p = rel, *slash;
	int fd = dup(x->rootfd), nfd;

	while (fd >= 0 && (slash = strchr(p, '/')) != NULL) {
		KKASSERT((size_t)(slash - p) <= HAMMER2_NAME_MAX);
		memcpy(comp, p, (size_t)(slash - p));
		comp[slash - p] = 0;
		nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		close(fd);
		fd = nfd;
		p = slash + 1;
	}
	*namep = p;
	return fd;
}

static void
meta_times(const hammer2_inode_meta_t *m, struct timespec ts[2])
{
	ts[0].tv_sec = (time_t)(m->atime / 1000000);
	ts[0].tv_nsec = (long)(m->atime % 1000000) * 1000;
	ts[1].tv_sec = (time_t)(m->mtime / 1000000);
	ts[1].tv_nsec = (long)(m->mtime % 1000000) * 1000;
}

/* Owner, mode and times of an entry just made in dfd (fd: it, open, or -1) */
static int
restore_meta(export_ctx_t *x, int dfd, const char *name, int fd,
	     const hammer2_inode_meta_t *m)
{
	struct timespec ts[2];
	mode_t mode = (mode_t)(m->mode & 07777);
	int symlink = m->type == HAMMER2_OBJTYPE_SOFTLINK;

	/* chown first: it clears set-id bits the mode then sets */
	if (x->as_root &&
	    (fd >= 0 ? fchown(fd, hammer2_uuid_xid(&m->uid),
			      hammer2_uuid_xid(&m->gid)) :
		       fchownat(dfd, name, hammer2_uuid_xid(&m->uid),
				hammer2_uuid_xid(&m->gid), AT_SYMLINK_NOFOLLOW)))
		return host_err(x, errno, "chown");
	if (!symlink &&
	    (fd >= 0 ? fchmod(fd, mode) : fchmodat(dfd, name, mode, 0)))
		return host_err(x, errno, "chmod");
	meta_times(m, ts);
	if (fd >= 0 ? futimens(fd, ts) :
		      utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW))
		return host_err(x, errno, "utimes");
	return 0;
}

static int
cannot_hold(export_ctx_t *x, const hammer2_inode_meta_t *m, int error)
{
	return hammer2_seterr(error, "%s: cannot hold %llu bytes: %s", x->path,
			      (unsigned long long)m->size, strerror(error));
}

/* The data extents of a file (all-zero blocks skipped), then its size. */
static int
copy_file(export_ctx_t *x, hammer2_tid_t inum, int fd,
	  const hammer2_inode_meta_t *m)
{
	hammer2_off_t off = 0, data;
	size_t n = 0, done = 0, pos, run;
	ssize_t w;
	int error;

	for (;;) {
		hammer2_pfs_trans_begin(x->pfs, 0);
		error = hammer2_file_next_data(x->pfs, inum, off, &data);
		if (error == 0 && data < m->size) {
			n = m->size - data < EXPORT_CHUNK ?
			    (size_t)(m->size - data) : EXPORT_CHUNK;
			error = hammer2_file_read(x->pfs, inum, data, x->buf,
						  n, &done);
		}
		hammer2_pfs_trans_end(x->pfs);
		if (error)
			return hammer2_preerr(error, "%s", x->path);
		if (data >= m->size)
			break;
		if (done < n)		/* the size changed under us */
			memset(x->buf + done, 0, n - done);
		for (pos = 0; (run = hammer2_data_run(x->buf, n, &pos)) != 0;
		     pos += run)
			if ((w = pwrite(fd, x->buf + pos, run,
					(off_t)(data + pos))) != (ssize_t)run)
				return cannot_hold(x, m, w < 0 ? errno : ENOSPC);
		off = data + n;
	}
	if (m->size > (hammer2_off_t)INT64_MAX)
		return cannot_hold(x, m, EFBIG);
	if (ftruncate(fd, (off_t)m->size))
		return cannot_hold(x, m, errno);
	return 0;
}

/*
 * A new file for name in dfd.  One already there is replaced, never
 * written: it could be a hardlink to a file outside DEST.  A symlink
 * there is refused (ELOOP).
 */
static int
create_file(int dfd, const char *name)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	struct stat hst;
	int fd;

	fd = openat(dfd, name, flags, 0600);
	if (fd >= 0 || errno != EEXIST)
		return fd;
	if (fstatat(dfd, name, &hst, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(hst.st_mode)) {
		errno = ELOOP;
		return -1;
	}
	if (unlinkat(dfd, name, 0))
		return -1;
	return openat(dfd, name, flags, 0600);
}

static int export_dir(export_ctx_t *x, hammer2_tid_t dinum, int dfd,
		      int depth);

/* One entry of the directory open as dfd. */
static int
export_entry(export_ctx_t *x, int dfd, const hammer2_dirent_t *ent,
	     int depth)
{
	hammer2_inode_meta_t m;
	struct stat hst;
	const char *first, *lname;
	char name[HAMMER2_NAME_MAX + 1];
	char target[HAMMER2_SYMLINK_MAX + 1];
	size_t tlen;
	int error, fd, lfd;

	if ((error = hammer2_name_validate(ent->name, ent->namlen)) != 0)
		return hammer2_preerr(error, "%s", where(x));
	memcpy(name, ent->name, ent->namlen);
	name[ent->namlen] = 0;
	hammer2_pfs_trans_begin(x->pfs, 0);
	error = hammer2_inode_meta(x->pfs, ent->inum, &m, NULL);
	if (error == 0 && m.type == HAMMER2_OBJTYPE_SOFTLINK)
		error = hammer2_file_readlink(x->pfs, ent->inum, target,
					      &tlen);
	hammer2_pfs_trans_end(x->pfs);
	if (error)
		return hammer2_preerr(error, "%s", x->path);
	if (m.type != ent->type)
		return hammer2_seterr(EINVAL, "%s: entry of type %d names "
				      "inode 0x%llx of type %d", x->path,
				      ent->type, (unsigned long long)ent->inum,
				      m.type);
	if (m.type == HAMMER2_OBJTYPE_DIRECTORY) {
		if (depth >= EXPORT_DEPTH)
			return hammer2_seterr(ELOOP, "%s: directories nested "
					      "deeper than %d", x->path,
					      EXPORT_DEPTH);
		/* each directory once: a hostile tree could fan out */
		if ((first = done_path(x, ent->inum)) != NULL)
			return hammer2_seterr(EINVAL, "%s: directory inode "
					      "0x%llx already exported as /%s",
					      x->path,
					      (unsigned long long)ent->inum,
					      first);
		if ((error = done_add(x, ent->inum, x->path + 1)) != 0)
			return error;
		if (mkdirat(dfd, name, 0700) && errno != EEXIST)
			return host_err(x, errno, "mkdir");
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			    O_CLOEXEC);
		/* O_DIRECTORY meets a symlink as ENOTDIR: say which */
		if (fd < 0 && errno == ENOTDIR &&
		    !fstatat(dfd, name, &hst, AT_SYMLINK_NOFOLLOW) &&
		    S_ISLNK(hst.st_mode))
			errno = ELOOP;
		if (fd < 0)
			return host_err(x, errno, "open");
		error = export_dir(x, ent->inum, fd, depth + 1);
		if (error == 0)
			error = restore_meta(x, dfd, name, fd, &m);
		close(fd);
		return error;
	}
	if (m.nlinks > 1 && (first = done_path(x, ent->inum)) != NULL) {
		if ((lfd = open_parent(x, first, &lname)) < 0)
			return host_err(x, errno, "link");
		error = linkat(lfd, lname, dfd, name, 0) ? errno : 0;
		close(lfd);
		return error ? host_err(x, error, "link") : 0;
	}
	fd = -1;
	switch (m.type) {
	case HAMMER2_OBJTYPE_REGFILE:
		if ((fd = create_file(dfd, name)) < 0)
			return host_err(x, errno, "create");
		error = copy_file(x, ent->inum, fd, &m);
		break;
	case HAMMER2_OBJTYPE_SOFTLINK:
		error = symlinkat(target, dfd, name) ?
			host_err(x, errno, "symlink") : 0;
		break;
	case HAMMER2_OBJTYPE_FIFO:
		error = mkfifoat(dfd, name, 0600) ?
			host_err(x, errno, "mkfifo") : 0;
		break;
	default:
		return 0;	/* device nodes and sockets are not recreated */
	}
	if (error == 0)
		error = restore_meta(x, dfd, name, fd, &m);
	if (fd >= 0)
		close(fd);
	if (error == 0 && m.nlinks > 1)
		error = done_add(x, ent->inum, x->path + 1);
	return error;
}

static int
export_dir(export_ctx_t *x, hammer2_tid_t dinum, int dfd, int depth)
{
	hammer2_dirent_t *ents;
	size_t count, old;
	int error;

	hammer2_pfs_trans_begin(x->pfs, 0);
	error = hammer2_dir_entries(x->pfs, dinum, &ents, &count);
	hammer2_pfs_trans_end(x->pfs);
	if (error)
		error = hammer2_preerr(error, "%s", where(x));
	for (size_t i = 0; error == 0 && i < count; ++i) {
		if ((error = path_push(x, &ents[i], &old)) != 0)
			break;
		x->count++;
		error = export_entry(x, dfd, &ents[i], depth);
		x->plen = old;
		x->path[old] = 0;
	}
	free(ents);
	return error;
}

int
hammer2_export(hammer2_pfs_t *pfs, hammer2_tid_t inum, const char *dest,
	       uint64_t *countp)
{
	export_ctx_t x;
	hammer2_inode_meta_t m;
	int error;

	memset(&x, 0, sizeof(x));
	x.pfs = pfs;
	x.as_root = geteuid() == 0;
	*countp = 0;
	hammer2_pfs_trans_begin(pfs, 0);
	error = hammer2_inode_meta(pfs, inum, &m, NULL);
	hammer2_pfs_trans_end(pfs);
	if (error)
		return error;
	if (m.type != HAMMER2_OBJTYPE_DIRECTORY)
		return hammer2_seterr(ENOTDIR, "inode 0x%llx is not a directory",
				      (unsigned long long)inum);
	if ((x.rootfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return hammer2_seterr(errno, "%s: %s", dest, strerror(errno));
	if ((x.buf = malloc(EXPORT_CHUNK)) == NULL) {
		error = hammer2_seterr(ENOMEM, "out of memory");
	} else {
		error = done_add(&x, inum, "");
		if (error == 0)
			error = export_dir(&x, inum, x.rootfd, 0);
		x.plen = 0;
		x.path[0] = 0;
		/* DEST itself, named as it was given */
		if (error == 0 && (error = restore_meta(&x, -1, NULL, x.rootfd,
							 &m)) != 0)
			error = hammer2_preerr(error, "%s", dest);
	}
	hammer2_keymap_free(&x.done, free);
	free(x.buf);
	close(x.rootfd);
	*countp = x.count;
	return error;
}
