/*
 * Cluster membership and quorum.  Every node of a cluster is a master;
 * nodes agree when their last committed transaction (the volume header's
 * mirror_tid) is the same.  Joining picks the transaction most nodes hold
 * (ties: the newest); nodes elsewhere are stale and take no part until a
 * resync brings them back.  A node whose write fails is failed: its flushes
 * are disabled and its pending metadata discarded, so its media keeps its
 * last complete transaction.  Writes need a quorum, floor(N/2)+1, of live
 * nodes, and a flush counts only once a quorum of nodes committed it.
 *
 * The node-set operations live here, above the PFS layer: join, writable,
 * flush (with the self-heal rewrite before it), bulkfree and swapping a
 * node; resync in place is hammer2_cluster_resync.c's, a node's own state
 * hammer2_node.c's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_cluster.h"

static const char *state_names[] = { "live", "stale", "failed" };

#define CLID_MAX	64

/* The cluster ids of a node's PFSes but LOCAL; -1 if it cannot tell. */
static int
node_clids(hammer2_dev_t *hmp, hammer2_uuid_t *clids)
{
	hammer2_pfs_info_t *infos;
	int count, n = 0;

	if (hammer2_pfs_list(&hmp, 1, &infos, &count) != 0)
		return -1;
	for (int i = 0; i < count && n < CLID_MAX; ++i)
		if (strcmp(infos[i].label, "LOCAL") != 0)
			clids[n++] = infos[i].pfs_clid;
	free(infos);
	return n;
}

static int
clids_meet(const hammer2_uuid_t *a, int na, const hammer2_uuid_t *b, int nb)
{
	for (int i = 0; i < na; ++i)
		for (int j = 0; j < nb; ++j)
			if (memcmp(&a[i], &b[j], sizeof(a[i])) == 0)
				return 1;
	return 0;
}

/*
 * Nodes holding none of the PFSes (by cluster id) the best-connected node
 * holds belong to another cluster: never written to, stale until a
 * resync makes them copies.  1 per foreign node in foreign[].
 */
void
hammer2_cluster_foreign(hammer2_dev_t **devs, int ndevs, int *foreign)
{
	static __thread hammer2_uuid_t clids[HAMMER2_MAXCLUSTER][CLID_MAX];
	int n[HAMMER2_MAXCLUSTER], best = -1, best_score = -1;

	for (int i = 0; i < ndevs; ++i) {
		foreign[i] = 0;
		n[i] = devs[i]->flush_error ? -1 : node_clids(devs[i], clids[i]);
	}
	for (int i = 0; i < ndevs; ++i) {
		int score = 0;

		if (n[i] <= 0)
			continue;
		for (int j = 0; j < ndevs; ++j)
			score += n[j] > 0 && clids_meet(clids[i], n[i], clids[j], n[j]);
		if (score > best_score) {
			best = i;
			best_score = score;
		}
	}
	for (int i = 0; best >= 0 && i < ndevs; ++i)
		foreign[i] = n[i] == 0 ||
			     (n[i] > 0 && !clids_meet(clids[i], n[i], clids[best],
						      n[best]));
}

/*
 * Classify the nodes of a freshly opened (or resynced) cluster.  Live
 * nodes continue from the newest transaction any node has seen, so tids
 * stay monotonic on every node after a resync.
 */
int
hammer2_cluster_join(hammer2_dev_t **devs, int ndevs)
{
	hammer2_tid_t best = 0, mtid = 0;
	int foreign[HAMMER2_MAXCLUSTER];
	int best_count = 0;
	char why[192];

	if (ndevs < 1 || ndevs > HAMMER2_MAXCLUSTER)
		return hammer2_seterr(EINVAL, "a cluster has 1 to %d nodes, not %d",
				      HAMMER2_MAXCLUSTER, ndevs);
	hammer2_cluster_foreign(devs, ndevs, foreign);
	for (int i = 0; i < ndevs; ++i)		/* foreign ones too: see resync */
		if (!devs[i]->flush_error && devs[i]->mtid > mtid)
			mtid = devs[i]->mtid;
	for (int i = 0; i < ndevs; ++i) {
		int count = 0;

		if (devs[i]->flush_error || foreign[i])
			continue;
		for (int j = 0; j < ndevs; ++j)
			count += !devs[j]->flush_error && !foreign[j] &&
				 hammer2_node_tid(devs[j]) == hammer2_node_tid(devs[i]);
		if (count > best_count ||
		    (count == best_count && hammer2_node_tid(devs[i]) > best)) {
			best = hammer2_node_tid(devs[i]);
			best_count = count;
		}
	}
	for (int i = 0; i < ndevs; ++i) {
		hammer2_dev_t *hmp = devs[i];

		if (hmp->flush_error) {
			snprintf(why, sizeof(why), "%s: flushes disabled after a failed write",
				 hmp->path);
			hammer2_node_set(hmp, HAMMER2_NODE_FAILED, hmp->flush_error, why);
		} else if (foreign[i]) {
			snprintf(why, sizeof(why), "%s: holds the PFSes of another "
				 "cluster (or none)", hmp->path);
			hammer2_node_set(hmp, HAMMER2_NODE_STALE, ESTALE, why);
		} else if (hammer2_node_tid(hmp) != best) {
			snprintf(why, sizeof(why), "%s: at transaction %llu, the cluster at %llu",
				 hmp->path, (unsigned long long)hammer2_node_tid(hmp),
				 (unsigned long long)best);
			hammer2_node_set(hmp, HAMMER2_NODE_STALE, ESTALE, why);
		} else {
			hammer2_node_set(hmp, HAMMER2_NODE_LIVE, 0, NULL);
			hmp->mtid = mtid;
		}
	}
	return 0;
}

/* Name the nodes that are out, for a below-quorum message. */
static void
out_nodes(hammer2_dev_t **devs, int ndevs, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = 0;
	for (int i = 0; i < ndevs && n < size; ++i) {
		hammer2_node_t node;

		hammer2_node_get(devs[i], &node);
		if (node.state == HAMMER2_NODE_LIVE)
			continue;
		n += (size_t)snprintf(buf + n, size - n, "; %s %s (%s)",
				      devs[i]->path, state_names[node.state],
				      node.why);
	}
}

/* Writes need a quorum of live nodes: EROFS naming it otherwise. */
int
hammer2_cluster_writable(hammer2_dev_t **devs, int ndevs)
{
	int live = 0;
	char buf[640];

	if (ndevs <= 1)
		return 0;
	for (int i = 0; i < ndevs; ++i)
		live += hammer2_node_live(devs[i]);
	if (live >= hammer2_quorum(ndevs))
		return 0;
	out_nodes(devs, ndevs, buf, sizeof(buf));
	return hammer2_seterr(EROFS, "cluster below quorum: %d of %d nodes live, "
			      "quorum %d%s", live, ndevs, hammer2_quorum(ndevs), buf);
}

/* A node's part of a cluster-wide operation failed: it leaves the cluster. */
static void
node_part_failed(hammer2_dev_t *hmp, int error, const char *why, int *firstp)
{
	hammer2_node_fail(hmp, error, why);
	if (*firstp == 0)
		*firstp = error;
}

/* One node's flush, on a thread of its own: nodes commit side by side. */
typedef struct node_flush {
	hammer2_dev_t	*hmp;
	pthread_t	tid;
	int		started;
	int		error;
	char		why[192];
} node_flush_t;

static void *
node_flush_main(void *arg)
{
	node_flush_t *nf = arg;

	nf->error = hammer2_flush(nf->hmp);
	if (nf->error)
		snprintf(nf->why, sizeof(nf->why), "%s", hammer2_errmsg());
	return NULL;
}

/* Flush the live nodes at once: all but the first on threads of their own. */
static void
flush_live_nodes(hammer2_dev_t **devs, int ndevs, node_flush_t *nf)
{
	int first_live = 1;

	for (int i = 0; i < ndevs; ++i) {
		nf[i] = (node_flush_t){ .hmp = devs[i] };
		if (!hammer2_node_live(devs[i]))
			continue;
		if (!first_live)
			nf[i].started = pthread_create(&nf[i].tid, NULL,
						       node_flush_main,
						       &nf[i]) == 0;
		first_live = 0;
	}
	/* the first, and any node no thread could be started for */
	for (int i = 0; i < ndevs; ++i)
		if (hammer2_node_live(devs[i]) && !nf[i].started)
			node_flush_main(&nf[i]);
	for (int i = 0; i < ndevs; ++i)
		if (nf[i].started)
			pthread_join(nf[i].tid, NULL);
}

/*
 * Commit every live node (callers hold each node's transaction lock
 * exclusively).  A node whose flush fails is failed; the flush stands when
 * a quorum committed it.  A single device simply returns its error.
 */
int
hammer2_cluster_flush(hammer2_dev_t **devs, int ndevs)
{
	node_flush_t nf[HAMMER2_MAXCLUSTER];
	int done = 0, first = 0, pending = 0;
	char why[192], buf[640];

	if (ndevs == 1)
		return hammer2_flush(devs[0]);
	hammer2_heal_run(devs, ndevs);
	for (int i = 0; i < ndevs; ++i)
		pending |= hammer2_node_live(devs[i]) &&
			   ((devs[i]->vchain->flags | devs[i]->fchain->flags) &
			    HAMMER2_CHAIN_MODIFIED);
	if (!pending)
		return 0;	/* nothing to commit: fine even below quorum */
	/* a node short of room refuses the commit for all, changing nothing */
	for (int i = 0; i < ndevs; ++i)
		if (hammer2_node_live(devs[i]) && !hammer2_flush_fits(devs[i]))
			return hammer2_seterr(ENOSPC, "%s: no room to commit "
					      "%llu bytes; nothing written",
					      devs[i]->path, (unsigned long long)
					      devs[i]->dirty_bytes);
	flush_live_nodes(devs, ndevs, nf);
	for (int i = 0; i < ndevs; ++i) {
		if (hammer2_node_live(devs[i])) {
			if (nf[i].error == 0) {
				++done;
				continue;
			}
			node_part_failed(devs[i], nf[i].error, nf[i].why, &first);
		} else if (devs[i]->node.resyncing) {
			continue;	/* what it holds is a resync's copy */
		}
		/* out of the cluster: its pending metadata is thrown away */
		hammer2_chain_release_subtree(devs[i]->vchain);
	}
	/*
	 * Live nodes commit one transaction together; one that had nothing
	 * to commit while the others did has missed modifications.
	 */
	for (int i = 0; i < ndevs; ++i) {
		hammer2_tid_t tid = devs[i]->voldata->mirror_tid;
		int same = 0;

		if (!hammer2_node_live(devs[i]))
			continue;
		for (int j = 0; j < ndevs; ++j)
			same += hammer2_node_live(devs[j]) &&
				devs[j]->voldata->mirror_tid == tid;
		if (same * 2 > done)
			continue;
		snprintf(why, sizeof(why), "%s: at transaction %llu, missed the "
			 "cluster's last", devs[i]->path, (unsigned long long)tid);
		hammer2_node_set(devs[i], HAMMER2_NODE_STALE, ESTALE, why);
		--done;
	}
	if (done >= hammer2_quorum(ndevs))
		return 0;
	out_nodes(devs, ndevs, buf, sizeof(buf));
	return hammer2_seterr(first ? first : EROFS,
			      "flush committed on %d of %d nodes, quorum %d%s",
			      done, ndevs, hammer2_quorum(ndevs), buf);
}


/*
 * bulkfree every live node (callers hold each node's transaction lock
 * exclusively): commit, scan each node, commit, so the nodes commit
 * their freemaps together.  Exactly the live nodes take part: a stale
 * one would claim a transaction it never got (hiding from the resync
 * what it missed).  A node whose scan fails is failed, like in a flush;
 * the rest stand if they make a quorum.  A first commit refused for
 * room changed nothing: what is pending goes out with the second.
 */
int
hammer2_cluster_bulkfree(hammer2_dev_t **devs, int ndevs, uint64_t *freedp)
{
	int done = 0, first = 0, error;
	uint64_t freed;
	char why[192];

	*freedp = 0;
	if (ndevs == 1)
		return hammer2_bulkfree(devs[0], freedp);
	if ((error = hammer2_cluster_writable(devs, ndevs)) != 0)
		return error;
	error = hammer2_cluster_flush(devs, ndevs);
	if (error && (error != ENOSPC || hammer2_cluster_writable(devs, ndevs)))
		return error;
	for (int i = 0; i < ndevs; ++i) {
		if (!hammer2_node_live(devs[i]))
			continue;
		error = hammer2_bulkfree_scan(devs[i], &freed);
		if (error == 0) {
			*freedp += freed;
			++done;
			continue;
		}
		snprintf(why, sizeof(why), "%s", hammer2_errmsg());
		node_part_failed(devs[i], error, why, &first);
		hammer2_chain_release_subtree(devs[i]->vchain);
	}
	if (done < hammer2_quorum(ndevs))
		return hammer2_seterr(first ? first : EROFS, "bulkfree done on "
				      "%d of %d nodes, quorum %d", done, ndevs,
				      hammer2_quorum(ndevs));
	return hammer2_cluster_flush(devs, ndevs);
}

/*
 * Point an open PFS's node `index` at hmp, a fresh open of that node's
 * media, in place of its failed, untrusted in-memory state (callers hold
 * every node's transaction lock exclusively, so no operation is under
 * way).  The PFS root is looked up anew there; the old chain is let go,
 * so the old device can be closed.
 */
int
hammer2_pfs_node_swap(hammer2_pfs_t *pfs, int index, hammer2_dev_t *hmp)
{
	hammer2_chain_t *chain;
	int error;

	if (index < 0 || index >= pfs->ndevs)
		return hammer2_seterr(EINVAL, "no node %d in a cluster of %d",
				      index, pfs->ndevs);
	/* out of every vote until a resync makes it agree */
	hammer2_node_stale(hmp, "reopened after a failure");
	if ((error = hammer2_pfs_root_lookup(pfs, hmp, &chain)) != 0)
		return error;
	hammer2_pfs_root_set(pfs, index, chain);
	__atomic_store_n(&pfs->devs[index], hmp, __ATOMIC_RELEASE);
	hammer2_cluster_resolve_focus(pfs->iroot);
	return 0;
}

/* Commit every live node, a quorum of them (inside a write transaction). */
int
hammer2_pfs_flush(hammer2_pfs_t *pfs)
{
	return hammer2_cluster_flush(pfs->devs, pfs->ndevs);
}

/*
 * After a resync, nodes that were outvoted or out of the cluster when an
 * open PFS resolved its root count again (every node's transaction lock
 * held exclusively); where the resync replaced the root (it did not read,
 * or the node lacked the PFS), the new one is looked up.
 */
void
hammer2_pfs_revalidate(hammer2_pfs_t *pfs)
{
	for (int i = 0; i < pfs->iroot->nchains; ++i) {
		hammer2_cluster_item_t *item = &pfs->iroot->array[i];
		hammer2_chain_t *chain;

		if (item->chain && item->chain->error == 0 &&
		    !(item->chain->flags & HAMMER2_CHAIN_DELETED)) {
			item->flags &= ~HAMMER2_CITEM_INVALID;
			item->error = 0;
		} else if (hammer2_pfs_root_lookup(pfs, pfs->devs[i], &chain) == 0) {
			hammer2_pfs_root_set(pfs, i, chain);
		}
	}
	hammer2_cluster_resolve_focus(pfs->iroot);
}
