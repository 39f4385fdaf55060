/*
 * A device's standing as a node of a cluster: live, stale or failed, the
 * error behind it and its read-error count, all under the device's
 * faultlock.  The layer below the cluster's: element reads report here,
 * node-set operations (hammer2_quorum.c) decide from here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include "hammer2_cluster.h"

/* Set the node's state, the error behind it and why (shown by nodes()). */
void
hammer2_node_set(hammer2_dev_t *hmp, int state, int error, const char *why)
{
	pthread_mutex_lock(&hmp->faultlock);
	__atomic_store_n(&hmp->node.state, state, __ATOMIC_RELEASE);
	hmp->node.error = error;
	snprintf(hmp->node.why, sizeof(hmp->node.why), "%s", why ? why : "");
	pthread_mutex_unlock(&hmp->faultlock);
}

int
hammer2_node_live(const hammer2_dev_t *hmp)
{
	return __atomic_load_n(&hmp->node.state, __ATOMIC_ACQUIRE) ==
	       HAMMER2_NODE_LIVE;
}

void
hammer2_node_get(hammer2_dev_t *hmp, hammer2_node_t *node)
{
	pthread_mutex_lock(&hmp->faultlock);
	*node = hmp->node;
	pthread_mutex_unlock(&hmp->faultlock);
}

/*
 * A write to this node failed (or it disconnected): it takes no part in
 * modifications from now on and no more flushes; what it had pending is
 * dropped at the next cluster flush, never half written.  Callers hold
 * the node's transaction lock exclusively.
 */
void
hammer2_node_fail(hammer2_dev_t *hmp, int error, const char *what)
{
	if (hmp->node.state == HAMMER2_NODE_FAILED)
		return;
	if (hmp->flush_error == 0)
		hmp->flush_error = error;
	hammer2_node_set(hmp, HAMMER2_NODE_FAILED, error, what);
}

/* Take a live node out of the cluster until it is resynced. */
void
hammer2_node_stale(hammer2_dev_t *hmp, const char *why)
{
	char buf[192];

	snprintf(buf, sizeof(buf), "%s: %s", hmp->path, why);
	hammer2_node_set(hmp, HAMMER2_NODE_STALE, ESTALE, buf);
}

/*
 * The node could not serve an element (I/O error, check mismatch): the
 * cluster skips it for that element; a disconnect fails the whole node.
 */
void
hammer2_node_read_error(hammer2_dev_t *hmp, int error, const char *what)
{
	pthread_mutex_lock(&hmp->faultlock);
	++hmp->node.read_errors;
	if (hmp->node.state == HAMMER2_NODE_LIVE)
		snprintf(hmp->node.why, sizeof(hmp->node.why), "%s", what);
	if (error == ENOTCONN && hmp->node.state != HAMMER2_NODE_FAILED) {
		__atomic_store_n(&hmp->node.state, HAMMER2_NODE_FAILED,
				 __ATOMIC_RELEASE);
		hmp->node.error = error;
		if (hmp->flush_error == 0)
			hmp->flush_error = error;
	}
	pthread_mutex_unlock(&hmp->faultlock);
}

/* The node's last committed transaction. */
hammer2_tid_t
hammer2_node_tid(const hammer2_dev_t *hmp)
{
	return hmp->voldata->mirror_tid;
}
