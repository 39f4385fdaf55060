/*
 * Whether a modification fits, and making room: the rules that keep an
 * acknowledged modification from being lost for lack of space.
 *
 * Space is allocated only when a commit writes the blocks out, so a
 * modification is admitted only if the commit that will carry it can
 * place everything it will really write: each node's count of what is
 * modified (whole blocks as copy-on-write reallocates them, indirect
 * blocks, inodes), what this modification may add, and some spare,
 * against the node's free 64 KiB runs.  When that is short, a bulkfree
 * takes back what the committed tree no longer references (a mount
 * commits what is pending first) before anything is refused.  A commit the
 * allocator would not have room for is refused before it writes
 * anything and is tried again later; only one that failed half way
 * stops further modifications.  Callers hold the PFS's exclusive
 * transaction.
 */
#include <errno.h>
#include <stdio.h>
#include "hammer2_cluster.h"

/*
 * Spare beyond what is counted: modifications that add data keep more,
 * so that removals, renames and attribute changes still fit on a volume
 * too full to take data (a full volume takes an rm).
 */
#define GROW_SPARE	(1ULL << 20)
#define CHANGE_SPARE	(256ULL << 10)
#define INDIRECT_LEVELS	3		/* 64 KiB blocks: a file of 2^44 bytes */
#define RECLAIM_GAP_NS	1000000000LL	/* bulkfrees ahead of need: 1 a second */

/* What the next commit would write on the busiest live node. */
static uint64_t
space_pending(hammer2_pfs_t *pfs)
{
	uint64_t dirty = 0;

	for (int i = 0; i < pfs->ndevs; ++i)
		if (hammer2_node_live(pfs->devs[i]) &&
		    pfs->devs[i]->dirty_bytes > dirty)
			dirty = pfs->devs[i]->dirty_bytes;
	return dirty;
}

/* Free 64 KiB runs on the fullest live node, as of the last commit. */
static uint64_t
space_room(hammer2_pfs_t *pfs)
{
	uint64_t room = UINT64_MAX;

	for (int i = 0; i < pfs->ndevs; ++i) {
		hammer2_dev_t *hmp = pfs->devs[i];

		if (hammer2_node_live(hmp) &&
		    hammer2_freemap_room(hmp, 0) < room)
			room = hammer2_freemap_room(hmp, 0);
	}
	return room;
}

/*
 * What the next commit needs if a modification writing `bytes` of data
 * joins what is pending: every 64 KiB block it touches (one more for an
 * unaligned end), and a path of indirect blocks, counted whole, for
 * every 512 of them (what one indirect block holds); an inode's worth
 * for the rest.
 */
static uint64_t
space_need(hammer2_pfs_t *pfs, uint64_t bytes, int kind)
{
	uint64_t blocks = bytes ? bytes / HAMMER2_PBUFSIZE + 2 : 0;
	uint64_t paths = blocks / 512 + 1;
	uint64_t need = space_pending(pfs) + HAMMER2_INODE_BYTES +
			(blocks + paths * INDIRECT_LEVELS) * HAMMER2_PBUFSIZE;

	return need + need / 16 +
	       (kind == HAMMER2_SPACE_GROWS ? GROW_SPARE : CHANGE_SPARE);
}

uint64_t
hammer2_space_avail(hammer2_pfs_t *pfs)
{
	uint64_t room = space_room(pfs);
	uint64_t need = space_need(pfs, 0, HAMMER2_SPACE_GROWS);

	return room > need ? room - need : 0;
}

int
hammer2_space_commit(hammer2_pfs_t *pfs)
{
	hammer2_space_t *sp = &pfs->space;
	int error;

	if (sp->failed)
		return hammer2_seterr(sp->failed, "a commit failed: no more "
				      "modifications");
	/* refused before it writes anything: pending state stays, for later */
	for (int i = 0; i < pfs->ndevs; ++i)
		if (hammer2_node_live(pfs->devs[i]) &&
		    !hammer2_flush_fits(pfs->devs[i]))
			return hammer2_seterr(ENOSPC, "%s: no room to commit "
					      "%llu bytes; nothing written, "
					      "modifications kept",
					      pfs->devs[i]->path,
					      (unsigned long long)
					      pfs->devs[i]->dirty_bytes);
	error = hammer2_pfs_flush(pfs);
	if (error)
		sp->failed = error;
	return error;
}

/* The newest transaction a live node committed. */
hammer2_tid_t
hammer2_space_tid(hammer2_pfs_t *pfs)
{
	hammer2_tid_t tid = 0;

	for (int i = 0; i < pfs->ndevs; ++i)
		if (hammer2_node_live(pfs->devs[i]) &&
		    pfs->devs[i]->voldata->mirror_tid > tid)
			tid = pfs->devs[i]->voldata->mirror_tid;
	return tid;
}

/*
 * Take back what the committed tree no longer references, on every live
 * node, into the freemaps in memory (the next commit writes them).  A
 * mount commits what is pending first, so the blocks it replaced are
 * taken back too; the API does not commit behind its caller's back.
 * Once per committed tree: a second scan would find nothing new.  One
 * that fails (a block of the tree it cannot read) just frees nothing.
 */
int
hammer2_space_reclaim(hammer2_pfs_t *pfs)
{
	hammer2_space_t *sp = &pfs->space;
	uint64_t freed;
	int error = 0;

	if (sp->autocommit && hammer2_pfs_pending(pfs) &&
	    (error = hammer2_space_commit(pfs)) != 0 && sp->failed)
		return error;
	if (sp->reclaimed_ns && sp->reclaimed_tid == hammer2_space_tid(pfs))
		return error;
	for (int i = 0; i < pfs->ndevs; ++i)
		if (hammer2_node_live(pfs->devs[i]) &&
		    hammer2_bulkfree_scan(pfs->devs[i], &freed) != 0)
			fprintf(stderr, "pyh2: bulkfree: %s\n", hammer2_errmsg());
	sp->reclaimed_tid = hammer2_space_tid(pfs);
	sp->reclaimed_ns = hammer2_mono_ns();
	return error;
}

int
hammer2_space_reserve(hammer2_pfs_t *pfs, uint64_t bytes, int kind)
{
	hammer2_space_t *sp = &pfs->space;

	if (sp->failed)
		return hammer2_seterr(sp->failed, "a commit failed: no more "
				      "modifications");
	/* space comes back before writers run short, at once if this is short */
	if (space_need(pfs, bytes, kind) > space_room(pfs) ||
	    (space_need(pfs, bytes, HAMMER2_SPACE_GROWS) > space_room(pfs) &&
	     hammer2_mono_ns() - sp->reclaimed_ns >= RECLAIM_GAP_NS))
		hammer2_space_reclaim(pfs);
	if (sp->failed)
		return hammer2_seterr(sp->failed, "a commit failed: no more "
				      "modifications");
	if (space_need(pfs, bytes, kind) > space_room(pfs))
		return hammer2_seterr(ENOSPC, "no room for %llu more bytes: "
				      "%llu pending, %llu free in 64 KiB runs",
				      (unsigned long long)bytes,
				      (unsigned long long)space_pending(pfs),
				      (unsigned long long)space_room(pfs));
	return 0;
}
