/*
 * Whole-tree copies between a PFS and a host directory, each one call
 * (hammer2_export.c, hammer2_import.c).
 */
#ifndef HAMMER2_XPORT_H
#define HAMMER2_XPORT_H

#include "hammer2.h"
#include "hammer2_keymap.h"

/*
 * Copy the tree under directory inum to the host directory dest (which
 * exists): never outside it nor through a symlink.  *countp: the entries
 * exported below inum.
 */
int hammer2_export(hammer2_pfs_t *pfs, hammer2_tid_t inum, const char *dest,
		   uint64_t *countp);

typedef struct hammer2_import_stats {
	uint64_t	files;		/* entries other than directories */
	uint64_t	bytes;		/* their file sizes */
} hammer2_import_stats_t;

/*
 * Copy the host tree src into directory dinum, committing every
 * flush_every bytes read.
 */
int hammer2_import(hammer2_pfs_t *pfs, const char *src, hammer2_tid_t dinum,
		   uint64_t flush_every, hammer2_import_stats_t *st);

#endif
