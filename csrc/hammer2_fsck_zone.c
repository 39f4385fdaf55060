/*
 * fsck of one header copy with one walk of each tree: the volume tree's
 * walk makes the logical checks (hammer2_fsck_tree.c) and records every
 * block it references, the freemap tree's walk verifies that tree's
 * blocks and copies its leaves, and the freemap is then compared with the
 * blocks (hammer2_fsck_freemap.c).  Checked apart, as they were, each
 * tree was walked (read and hashed) twice.
 */
#include <string.h>
#include "hammer2.h"

static int
freemap_cb(void *arg, int depth, const hammer2_blockref_t *bref,
	   const void *data, int bytes, int error)
{
	hammer2_fsck_tree_t *r = arg;

	if (error)
		hammer2_fsck_report(r, "%s", hammer2_errmsg());
	return hammer2_blockmap_leaf(r->map, depth, bref, data, bytes, error);
}

/* Returns an errno only when a walk could not start (or out of memory). */
int
hammer2_fsck_zone(hammer2_dev_t *hmp, int zone, hammer2_fsck_zone_t *r)
{
	hammer2_blockmap_t bm;
	int error;

	memset(&bm, 0, sizeof(bm));
	r->tree.map = r->fmtree.map = &bm;
	error = hammer2_fsck_tree(hmp, zone, &r->tree);
	if (error == 0) {
		error = hammer2_walk_zone(hmp, zone, 1, freemap_cb, &r->fmtree,
					  &r->fmtree.stats);
		error = hammer2_blockmap_finish(&bm, error, &r->fmtree.stats);
	}
	r->tree.map = r->fmtree.map = NULL;
	if (error == 0)
		hammer2_fsck_freemap(hmp, &bm, &r->freemap);
	hammer2_blockmap_free(&bm);
	return error;
}
