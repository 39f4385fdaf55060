/*
 * What the cluster layer's files (hammer2_cluster.c, hammer2_cluster_load.c)
 * share: which of an element's chains may serve, and which node serves
 * first.
 */
#ifndef HAMMER2_CLUSTER_PRIV_H_
#define HAMMER2_CLUSTER_PRIV_H_

#include "hammer2_cluster.h"

/* The node's chain for this element exists and read without error. */
static inline int
item_valid(const hammer2_cluster_item_t *item)
{
	return item->chain && !(item->flags & HAMMER2_CITEM_INVALID) &&
	       item->error == 0 && item->chain->error == 0;
}

/* ... and the node is a live member: the items writes fan out to. */
static inline int
item_live(const hammer2_cluster_item_t *item)
{
	return item_valid(item) && hammer2_node_live(item->chain->hmp);
}

int cluster_quickest(hammer2_cluster_t *cluster, int any_live);
void cluster_note_unread(hammer2_cluster_t *cluster, hammer2_chain_t **at,
			 uint32_t failed, hammer2_key_t beg, hammer2_key_t end);

#endif /* HAMMER2_CLUSTER_PRIV_H_ */
