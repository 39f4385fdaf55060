/*
 * Resync a node of a cluster in place, in passes (hammer2_resync_walk_t):
 * each step runs under every node's transaction lock, held exclusively,
 * and may stop between two elements so the cluster serves meanwhile (the
 * node set, hammer2_nodeset.c, lets the waiting transactions in).  Every
 * pass begins with the live nodes committing what they have pending; one
 * that stopped is followed by another, which copies what the cluster
 * changed since it began; the one that runs through without stopping
 * leaves the node the live nodes' copy, and it is committed at their
 * transaction and rejoins.  Until then the node is stale: writes pass it
 * by, and its copy so far stays in memory (node.resyncing keeps a cluster
 * flush from throwing it away).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "hammer2_cluster.h"

/* Passes that may stop; the next one runs through (the final, short one). */
#define RESYNC_PASSES_MAX	8

static uint32_t
live_mask(hammer2_dev_t **devs, int ndevs)
{
	uint32_t mask = 0;

	for (int i = 0; i < ndevs; ++i)
		if (hammer2_node_live(devs[i]))
			mask |= 1u << i;
	return mask;
}

/*
 * The sources of dst_index, live nodes in order (src_index's first,
 * -1: none first), needing a quorum.  Returns the count or -errno.
 */
static int
resync_sources(hammer2_dev_t **devs, int ndevs, int dst_index, int src_index,
	       hammer2_dev_t **src)
{
	int live = 0, nsrc = 0;

	if (src_index >= 0) {
		if (src_index >= ndevs || src_index == dst_index ||
		    !hammer2_node_live(devs[src_index]))
			return -hammer2_seterr(EINVAL, "node %d is no live source",
					       src_index);
		src[nsrc++] = devs[src_index];
	}
	for (int i = 0; i < ndevs; ++i) {
		if (!hammer2_node_live(devs[i]))
			continue;
		++live;
		if (i != src_index)
			src[nsrc++] = devs[i];
	}
	if (live < hammer2_quorum(ndevs))
		return -hammer2_seterr(EROFS, "cannot resync %s: %d of %d nodes "
				       "live, quorum %d", devs[dst_index]->path,
				       live, ndevs, hammer2_quorum(ndevs));
	return nsrc;
}

/*
 * Before the first pass: whether there is anything to do (0: the node is
 * live), and the flags it takes.  A scrub takes a live node out while it
 * is checked; a node of another cluster is compared in full.
 */
static int
resync_first(hammer2_dev_t **devs, int ndevs, int dst_index, int *flagsp)
{
	hammer2_dev_t *dst = devs[dst_index];
	int foreign[HAMMER2_MAXCLUSTER];
	hammer2_node_t node;

	hammer2_node_get(dst, &node);
	if ((*flagsp & HAMMER2_RESYNC_SCRUB) &&
	    node.state == HAMMER2_NODE_LIVE && ndevs > 1) {
		/* refused before it is taken out: a failed scrub leaves it live */
		int live = __builtin_popcount(live_mask(devs, ndevs)) - 1;

		if (live < hammer2_quorum(ndevs))
			return -hammer2_seterr(EROFS, "cannot scrub %s: the "
					       "other nodes (%d of %d live) are "
					       "short of the quorum %d without "
					       "it", dst->path, live, ndevs,
					       hammer2_quorum(ndevs));
		*flagsp |= HAMMER2_RESYNC_KEEP;
		hammer2_node_stale(dst, "being scrubbed");
		hammer2_node_get(dst, &node);
	}
	if (node.state == HAMMER2_NODE_LIVE)
		return 0;
	if (node.state == HAMMER2_NODE_FAILED)
		return -hammer2_seterr(EBUSY, "%s: failed (%s); reopen the cluster "
				       "to resync it", dst->path, node.why);
	hammer2_cluster_foreign(devs, ndevs, foreign);
	if (foreign[dst_index])
		*flagsp |= HAMMER2_RESYNC_FULL;
	return 1;
}

/*
 * A pass begins: the live nodes commit what is pending.  Before the
 * first, a node that went its own way past the cluster's transaction
 * makes them commit one beyond it (join numbered them so).
 */
static int
pass_begin(hammer2_dev_t **devs, int ndevs, hammer2_dev_t *dst,
	   hammer2_dev_t *src0, int flags, const hammer2_resync_walk_t *w)
{
	int error;

	if (w->passes == 0 &&
	    (dst->voldata->mirror_tid >= src0->voldata->mirror_tid ||
	     (flags & HAMMER2_RESYNC_FULL))) {
		for (int i = 0; i < ndevs; ++i) {
			if (hammer2_node_live(devs[i]) &&
			    (error = hammer2_chain_modify(devs[i]->vchain,
							  devs[i]->mtid)) != 0)
				return error;
		}
	}
	return hammer2_cluster_flush(devs, ndevs);
}

/*
 * The copy so far is let go, and the node is failed: what the copy changed
 * beyond the chains released here (the freemap root in the volume header,
 * as its data written ahead was given room; chains open PFSes hold) is not
 * undone in memory, so the node is reopened from its media, where it is
 * as it was, before it is resynced again.
 */
void
hammer2_cluster_resync_abort(hammer2_dev_t *dst)
{
	char why[192];

	if (!dst->node.resyncing)
		return;
	dst->node.resyncing = 0;
	hammer2_chain_release_subtree(dst->vchain);
	hammer2_chain_release_subtree(dst->fchain);
	snprintf(why, sizeof(why), "%s: resync given up; reopened before the "
		 "next", dst->path);
	hammer2_node_fail(dst, ECANCELED, why);
}

/* A pass failed half way: its in-memory tree is untrusted until reopened. */
static int
resync_failed(hammer2_dev_t *dst, int error)
{
	char why[192];

	dst->node.resyncing = 0;
	snprintf(why, sizeof(why), "%s", hammer2_errmsg());
	hammer2_node_fail(dst, error, why);
	return hammer2_seterr(error, "%s", why);
}

/*
 * One step of the resync of node dst_index from the live nodes
 * (src_index's first, -1: in node order), each element from the first
 * that serves it; callers hold every node's transaction lock
 * exclusively, in node order, and start with *w zeroed.  Returns
 * EINPROGRESS when it stopped (w->stop said so): the caller lets the
 * locks go and calls again with the same w; 0 once the node is live
 * again.  A failed node's in-memory state is not trusted: it is resynced
 * after a reopen, when it comes back stale.
 */
int
hammer2_cluster_resync_step(hammer2_dev_t **devs, int ndevs, int dst_index,
			    int src_index, int flags,
			    hammer2_resync_stats_t *stats, hammer2_resync_walk_t *w)
{
	hammer2_dev_t *dst, *src[HAMMER2_MAXCLUSTER];
	int nsrc, error;

	if (dst_index < 0 || dst_index >= ndevs)
		return hammer2_seterr(EINVAL, "no node %d in a cluster of %d",
				      dst_index, ndevs);
	dst = devs[dst_index];
	if (w->passes == 0) {
		if ((error = resync_first(devs, ndevs, dst_index, &flags)) <= 0)
			return -error;
		w->live = live_mask(devs, ndevs);
		w->flags = flags;
		/* a scrub keeps what only dst holds: one pass, never stopped */
		if (flags & HAMMER2_RESYNC_SCRUB)
			w->stop = NULL;
	} else if (!dst->node.resyncing || live_mask(devs, ndevs) != w->live ||
		   __atomic_load_n(&dst->node.state, __ATOMIC_ACQUIRE) !=
		   HAMMER2_NODE_STALE) {
		/* a node left or came back meanwhile: start again */
		hammer2_cluster_resync_abort(dst);
		return hammer2_seterr(EAGAIN, "%s: the cluster changed during "
				      "its resync", dst->path);
	}
	if ((nsrc = resync_sources(devs, ndevs, dst_index, src_index, src)) < 0)
		return -nsrc;
	for (;;) {
		if (w->resume == 0 &&
		    (error = pass_begin(devs, ndevs, dst, src[0], w->flags, w)) != 0)
			break;
		dst->node.resyncing = 1;
		error = hammer2_resync_pass(src, nsrc, dst, w->flags, stats, w);
		if (error == EINPROGRESS)
			return error;
		if (error)
			return resync_failed(dst, error);
		if (!w->stopped)
			break;
		/* what changed while it was stopped: another pass */
		w->since = w->mtid;
		if (w->passes >= RESYNC_PASSES_MAX)
			w->stop = NULL;
	}
	if (error) {
		hammer2_cluster_resync_abort(dst);
		return error;
	}
	dst->node.resyncing = 0;
	if ((error = hammer2_resync_commit(dst, src[0], stats)) != 0)
		return resync_failed(dst, error);
	return hammer2_cluster_join(devs, ndevs);
}

/* Resync node dst_index in one go: one step that never stops. */
int
hammer2_cluster_resync(hammer2_dev_t **devs, int ndevs, int dst_index,
		       int src_index, int flags, hammer2_resync_stats_t *stats)
{
	hammer2_resync_walk_t w;

	memset(&w, 0, sizeof(w));
	return hammer2_cluster_resync_step(devs, ndevs, dst_index, src_index,
					   flags, stats, &w);
}
