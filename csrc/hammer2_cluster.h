/*
 * Cluster membership, quorum and resync (hammer2_quorum.c,
 * hammer2_resync.c): the nodes of a cluster are devices holding the same
 * PFSes as masters.  With N nodes an operation needs floor(N/2)+1 of
 * them to agree; nodes that disagree are stale, nodes whose writes
 * failed are failed, and both are brought back by a resync.
 */
#ifndef HAMMER2_CLUSTER_H_
#define HAMMER2_CLUSTER_H_

#include "hammer2.h"

static inline int
hammer2_quorum(int nnodes)
{
	return nnodes / 2 + 1;
}

int hammer2_cluster_join(hammer2_dev_t **devs, int ndevs);
int hammer2_cluster_writable(hammer2_dev_t **devs, int ndevs);
int hammer2_cluster_flush(hammer2_dev_t **devs, int ndevs);
int hammer2_node_live(const hammer2_dev_t *hmp);
void hammer2_node_fail(hammer2_dev_t *hmp, int error, const char *what);
void hammer2_node_read_error(hammer2_dev_t *hmp, int error, const char *what);
void hammer2_node_get(hammer2_dev_t *hmp, hammer2_node_t *node);
hammer2_tid_t hammer2_node_tid(const hammer2_dev_t *hmp);

/* Resync statistics. */
typedef struct hammer2_resync_stats {
	uint64_t	visited;	/* source elements compared */
	uint64_t	skipped;	/* subtrees unchanged since the node's tid */
	uint64_t	copied;		/* elements written to the node */
	uint64_t	deleted;	/* elements the node had and should not */
	uint64_t	bytes;		/* logical data bytes copied */
} hammer2_resync_stats_t;

int hammer2_resync(hammer2_dev_t *src, hammer2_dev_t *dst,
		   hammer2_resync_stats_t *stats);
int hammer2_cluster_resync(hammer2_dev_t **devs, int ndevs, int dst_index,
			   hammer2_resync_stats_t *stats);

#endif /* HAMMER2_CLUSTER_H_ */
