/*
 * pyh2: a PFS served to the kernel through libfuse3's low-level API.
 *
 * FUSE inode numbers are HAMMER2 inode numbers, except that the PFS root
 * is FUSE_ROOT_ID (and inode 1, if the PFS has one, takes the root's
 * number).  Every request runs in its own PFS transaction: shared for
 * reads, exclusive for modifications.  Modifications are committed by
 * fsync/fsyncdir, by a background flush every few seconds and after
 * enough written data, and when the session ends.
 */
#ifndef HAMMER2_FUSE_H_
#define HAMMER2_FUSE_H_

#include "hammer2.h"

typedef struct hammer2_fuse hammer2_fuse_t;

#define HAMMER2_FUSE_RDONLY	0x0001	/* refuse every modification */
#define HAMMER2_FUSE_DEBUG	0x0002	/* libfuse request trace on stderr */

/*
 * Mount pfs on mountpoint; options is a comma separated list of extra
 * mount options (may be NULL), fsname names the source in the mount table.
 */
int hammer2_fuse_mount(hammer2_pfs_t *pfs, const char *mountpoint,
		       const char *fsname, const char *options, int flags,
		       int flush_secs, hammer2_fuse_t **fusep);
/* Serve requests with up to max_threads workers until unmounted. */
int hammer2_fuse_loop(hammer2_fuse_t *fuse, int max_threads);
/* End the session (final flush); returns the first flush error, if any. */
int hammer2_fuse_close(hammer2_fuse_t *fuse);

#endif /* HAMMER2_FUSE_H_ */
