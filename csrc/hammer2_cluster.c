/*
 * Cluster layer: the chains that represent the same element on each node
 * (device) of a PFS, presented as one.  Every operation fans out to the
 * nodes; the focus, the chain the filesystem layer reads through, is
 * always the first valid chain of a live node (hammer2_quorum.c decides
 * which nodes are live).  A node that fails to read an element (I/O
 * error, check mismatch) stops being valid for it and the next one serves
 * it; a node that fails a modification is failed as a whole.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_cluster_priv.h"

hammer2_cluster_t *
hammer2_cluster_alloc(int nchains)
{
	hammer2_cluster_t *cluster;

	if (nchains < 1 || nchains > HAMMER2_MAXCLUSTER)
		return NULL;
	cluster = calloc(1, sizeof(*cluster));
	if (cluster == NULL)
		return NULL;
	cluster->refs = 1;
	cluster->nchains = nchains;
	cluster->focus_index = -1;
	return cluster;
}

void
hammer2_cluster_ref(hammer2_cluster_t *cluster)
{
	int refs = __atomic_fetch_add(&cluster->refs, 1, __ATOMIC_ACQ_REL);

	KKASSERT(refs > 0);
}

void
hammer2_cluster_drop(hammer2_cluster_t *cluster)
{
	int refs = __atomic_sub_fetch(&cluster->refs, 1, __ATOMIC_ACQ_REL);

	KKASSERT(refs >= 0);
	if (refs > 0)
		return;
	for (int i = 0; i < cluster->nchains; ++i)
		if (cluster->array[i].chain)
			hammer2_chain_drop(cluster->array[i].chain);
	free(cluster);
}

void
hammer2_cluster_lock(hammer2_cluster_t *cluster, int how)
{
	KKASSERT(cluster->refs > 0 && cluster->nchains >= 1 &&
		 cluster->nchains <= HAMMER2_MAXCLUSTER);
	for (int i = 0; i < cluster->nchains; ++i)
		if (cluster->array[i].chain)
			hammer2_chain_lock(cluster->array[i].chain, how);
}

void
hammer2_cluster_unlock(hammer2_cluster_t *cluster)
{
	KKASSERT(cluster->refs > 0);
	for (int i = 0; i < cluster->nchains; ++i)
		if (cluster->array[i].chain)
			hammer2_chain_unlock(cluster->array[i].chain);
}

/* ... and the node's in-memory tree can be trusted (not failed). */
static int
item_sound(const hammer2_cluster_item_t *item)
{
	hammer2_node_t *node;

	if (!item_valid(item))
		return 0;
	node = &item->chain->hmp->node;
	return __atomic_load_n(&node->state, __ATOMIC_ACQUIRE) !=
	       HAMMER2_NODE_FAILED;
}

/* Two nodes hold the same version of an element. */
static int
item_agree(const hammer2_chain_t *a, const hammer2_chain_t *b)
{
	return a->bref.type == b->bref.type &&
	       a->bref.modify_tid == b->bref.modify_tid;
}

/*
 * Nodes agree on an element by its type and modify_tid.  With several
 * live nodes, those holding a different version than most of them (ties:
 * the newest) are out of sync for this element and left out.
 */
static void
cluster_vote(hammer2_cluster_t *cluster)
{
	const hammer2_chain_t *best_chain = NULL;
	hammer2_tid_t best = 0;
	int best_count = 0, live = 0;

	for (int i = 0; i < cluster->nchains; ++i) {
		const hammer2_cluster_item_t *a = &cluster->array[i];
		int count = 0;

		if (!item_live(a))
			continue;
		/* volume roots are the nodes' own: node agreement is the quorum's */
		if (a->chain->bref.type == HAMMER2_BREF_TYPE_VOLUME)
			return;
		++live;
		for (int j = 0; j < cluster->nchains; ++j)
			count += item_live(&cluster->array[j]) &&
				 item_agree(cluster->array[j].chain, a->chain);
		if (count > best_count || (count == best_count &&
					   a->chain->bref.modify_tid > best)) {
			best = a->chain->bref.modify_tid;
			best_chain = a->chain;
			best_count = count;
		}
	}
	if (live < 2 || best_count == live)
		return;
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];

		if (item_live(item) && !item_agree(item->chain, best_chain)) {
			/* an unexpected chain: a different element there */
			if (item->chain->bref.type != best_chain->bref.type)
				hammer2_node_read_error(item->chain->hmp, EINVAL,
							"unexpected chain type");
			item->flags |= HAMMER2_CITEM_INVALID;
		}
	}
}

/*
 * The focus rule, used everywhere: the first valid chain of a live node;
 * with none, the first valid chain at all (a cluster below quorum still
 * serves reads).
 */
void
hammer2_cluster_resolve_focus(hammer2_cluster_t *cluster)
{
	cluster->focus = NULL;
	cluster->focus_index = -1;
	cluster->error = 0;
	cluster_vote(cluster);
	for (int pass = 0; pass < 2 && cluster->focus == NULL; ++pass) {
		for (int i = 0; i < cluster->nchains; ++i) {
			hammer2_cluster_item_t *item = &cluster->array[i];

			if (pass == 0 ? item_live(item) : item_valid(item)) {
				cluster->focus = item->chain;
				cluster->focus_index = i;
				cluster->error = 0;
				return;
			}
			if (cluster->error == 0)
				cluster->error = item->error ? item->error :
						 item->chain ? item->chain->error : 0;
		}
	}
	if (cluster->error == 0)
		cluster->error = ENOENT;
}

/* A new cluster with cluster's items, their chains referenced anew. */
hammer2_cluster_t *
hammer2_cluster_copy(hammer2_cluster_t *cluster)
{
	hammer2_cluster_t *copy = hammer2_cluster_alloc(cluster->nchains);

	if (copy == NULL)
		return NULL;
	copy->flags = cluster->flags;
	for (int i = 0; i < cluster->nchains; ++i) {
		copy->array[i] = cluster->array[i];
		if (copy->array[i].chain)
			hammer2_chain_ref(copy->array[i].chain);
	}
	hammer2_cluster_resolve_focus(copy);
	return copy;
}

/*
 * For assertions: the focus is its item's chain, or there is none.  A
 * lookup moves a parent's chains without resolving its focus again, so
 * this holds where the focus is used, not of an iteration's parent.
 */
static int
focus_ok(const hammer2_cluster_t *cluster)
{
	int i = cluster->focus_index;

	if (cluster->focus == NULL)
		return i == -1;
	return i >= 0 && i < cluster->nchains &&
	       cluster->array[i].chain == cluster->focus;
}

int
hammer2_cluster_type(const hammer2_cluster_t *cluster)
{
	return cluster->focus ? cluster->focus->bref.type :
				HAMMER2_BREF_TYPE_EMPTY;
}

const hammer2_blockref_t *
hammer2_cluster_bref(const hammer2_cluster_t *cluster)
{
	return cluster->focus ? &cluster->focus->bref : NULL;
}

const hammer2_media_data_t *
hammer2_cluster_rdata(hammer2_cluster_t *cluster)
{
	KKASSERT(focus_ok(cluster));
	return cluster->focus ? cluster->focus->data : NULL;
}

/*
 * A node could not serve an element below pitem: the node (counted in its
 * status) is left out of this element and of the rest of the iteration.
 */
static void
node_failed_element(hammer2_cluster_item_t *pitem, int error)
{
	hammer2_chain_t *chain = pitem->chain;
	char what[200];

	snprintf(what, sizeof(what), "%s", hammer2_errmsg());
	pitem->error = error;
	hammer2_node_read_error(chain->hmp, error, what);
}

/*
 * The node could not read its way to this element (pitem: the parent's
 * item in the iteration): the element is unread there, not absent.
 */
static void
item_unread(hammer2_cluster_item_t *item, const hammer2_cluster_item_t *pitem)
{
	if (pitem->chain == NULL || (pitem->error == 0 && pitem->chain->error == 0))
		return;
	item->error = pitem->error ? pitem->error : pitem->chain->error;
	item->hmp = pitem->chain->hmp;
}

/*
 * Nodes in `failed` could not read the element at [beg, end] (or their
 * way to it: at[i] is where they stopped) while the live ones served it:
 * noted, for the next flush to rewrite it there from those.
 */
void
cluster_note_unread(hammer2_cluster_t *cluster, hammer2_chain_t **at,
		    uint32_t failed, hammer2_key_t beg, hammer2_key_t end)
{
	hammer2_chain_t *good[HAMMER2_MAXCLUSTER];
	int n = 0;

	for (int i = 0; i < cluster->nchains; ++i)
		if (item_live(&cluster->array[i]))
			good[n++] = cluster->array[i].chain;
	for (int i = 0; n && i < cluster->nchains; ++i)
		if ((failed & (1u << i)) && at[i] && hammer2_node_live(at[i]->hmp))
			hammer2_heal_note(at[i], good, n, beg, end);
}

/*
 * Narrow an iteration to the quickest live node, for reads that need one
 * copy (HAMMER2_LOOKUP_FOCUS): nothing is read from the other nodes, so a
 * slow one holds up no read another serves.  Sound because live nodes
 * hold the same tree: a node is live only at the transaction the quorum
 * committed (hammer2_quorum.c), and every modification since reached
 * each live node or failed it (item_fail, cluster_fail_unread).  A live
 * node's copy, verified by its check code, is then the quorum's, and the
 * vote a full lookup holds (cluster_vote) would find every live node
 * agreeing.  A read that fails there is retried on every node by its
 * caller (hammer2_focus_retry), which serves it from another copy and
 * notes it for self-heal.  Without a live node, every node is read.
 */
static void
cluster_narrow(hammer2_cluster_t *cluster)
{
	int any_live = 0, keep;

	if (cluster->nchains < 2)
		return;
	for (int i = 0; i < cluster->nchains; ++i)
		any_live |= item_live(&cluster->array[i]);
	if (!any_live || (keep = cluster_quickest(cluster, 1)) < 0)
		return;
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];

		if (i == keep)
			continue;
		if (item->chain)
			hammer2_chain_drop(item->chain);
		*item = (hammer2_cluster_item_t){ .flags = HAMMER2_CITEM_INVALID };
	}
	cluster->flags |= HAMMER2_CLUSTER_PARTIAL;
	hammer2_cluster_resolve_focus(cluster);
}

/*
 * Start an iteration under cparent: a private copy whose chains are
 * referenced and locked, so lookups may move them through indirect
 * blocks without disturbing cparent.  HAMMER2_LOOKUP_FOCUS: of the
 * quickest live node only (cluster_narrow), for reads.
 */
hammer2_cluster_t *
hammer2_cluster_lookup_init(hammer2_cluster_t *cparent, int flags)
{
	hammer2_cluster_t *copy = hammer2_cluster_copy(cparent);

	if (copy == NULL)
		return NULL;
	if (flags & HAMMER2_LOOKUP_FOCUS)
		cluster_narrow(copy);
	hammer2_cluster_lock(copy, (flags & HAMMER2_LOOKUP_SHARED) ?
			     HAMMER2_RESOLVE_SHARED : 0);
	return copy;
}

/*
 * A read through one node (HAMMER2_LOOKUP_FOCUS) failed: whether to read
 * again through every node, which serves it from another copy and notes
 * the failed one for self-heal.  Not for ENOENT: nothing found is that
 * live node's answer, so the quorum's; nor with one node, the same read.
 */
int
hammer2_focus_retry(hammer2_pfs_t *pfs, int error)
{
	return pfs->ndevs > 1 && error != 0 && error != ENOENT;
}

void
hammer2_cluster_lookup_done(hammer2_cluster_t *cparent)
{
	hammer2_cluster_unlock(cparent);
	hammer2_cluster_drop(cparent);
}

/*
 * End a lookup/next scan: release the element it stopped at (when it
 * stopped early) and the parent.  Returns error, or for a scan that ran
 * to its end, the error the parent met on the way.
 */
int
hammer2_cluster_scan_done(hammer2_cluster_t *cparent,
			  hammer2_cluster_t *cluster, int error)
{
	if (cluster) {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	} else if (error == 0) {
		error = cparent->error;
	}
	hammer2_cluster_lookup_done(cparent);
	return error;
}

/*
 * Look up the lowest-keyed element in [key_beg, key_end] on every node.
 * Nodes whose result has a higher key than the lowest found do not take
 * part in this element; they find theirs again on the next step.  The
 * result is locked; NULL at the end of the range, with cparent->error set
 * when no node could answer.
 */
hammer2_cluster_t *
hammer2_cluster_lookup(hammer2_cluster_t *cparent, hammer2_key_t *key_nextp,
		       hammer2_key_t key_beg, hammer2_key_t key_end, int flags)
{
	hammer2_cluster_t *cluster;
	hammer2_key_t key_min = HAMMER2_KEY_MAX;
	hammer2_key_t next_min = 0;
	int found = 0, any_sound = 0, answered = 0, live_answered = 0;
	hammer2_chain_t *at[HAMMER2_MAXCLUSTER];
	uint32_t damaged = 0;
	int error = 0;

	*key_nextp = 0;
	cparent->error = 0;
	cluster = hammer2_cluster_alloc(cparent->nchains);
	if (cluster == NULL) {
		cparent->error = hammer2_seterr(ENOMEM, "out of memory");
		return NULL;
	}
	cluster->flags = cparent->flags & HAMMER2_CLUSTER_PARTIAL;
	/*
	 * Stale nodes are looked up too (their trees are sound, and the
	 * element must be at hand when a resync makes them live again, e.g.
	 * in a PFS root kept open), failed nodes only when nothing else is.
	 */
	for (int i = 0; i < cparent->nchains; ++i)
		any_sound |= item_sound(&cparent->array[i]);
	for (int i = 0; i < cparent->nchains; ++i) {
		hammer2_cluster_item_t *pitem = &cparent->array[i];
		hammer2_cluster_item_t *item = &cluster->array[i];
		hammer2_key_t next;

		item->flags = HAMMER2_CITEM_INVALID;
		item_unread(item, pitem);
		if (any_sound ? !item_sound(pitem) : !item_valid(pitem))
			continue;
		item->chain = hammer2_chain_lookup(&pitem->chain, &next, key_beg,
						   key_end, &item->error, flags);
		if (item->chain == NULL) {
			if (item->error && error == 0)
				error = item->error;
			if (item->error) {
				node_failed_element(pitem, item->error);
				item_unread(item, pitem);
				if (item->error != ENOTCONN) {
					at[i] = pitem->chain;
					damaged |= 1u << i;
				}
			} else {
				++answered;
			}
			live_answered |= !item->error && item_live(pitem);
			continue;
		}
		item->flags = 0;
		live_answered |= item_live(pitem);
	}
	/*
	 * When a live node answered, elements only other nodes hold are
	 * ones the cluster deleted (or never had): not there.
	 */
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];

		if (item->chain == NULL ||
		    (live_answered && !item_live(&cparent->array[i])))
			continue;
		if (!found || item->chain->bref.key < key_min)
			key_min = item->chain->bref.key;
		found = 1;
	}
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];
		hammer2_key_t next;

		if (item->chain == NULL)
			continue;
		if (item->chain->bref.key != key_min) {
			hammer2_chain_unlock(item->chain);
			hammer2_chain_drop(item->chain);
			item->chain = NULL;
			item->flags = HAMMER2_CITEM_INVALID;
			continue;
		}
		next = hammer2_bref_key_end(&item->chain->bref) + 1;
		if (next_min == 0 || (next != 0 && next < next_min))
			next_min = next;
	}
	if (!found) {
		/* "none" is an answer when a node could give it */
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
		cparent->error = answered || live_answered ? 0 : error;
		return NULL;
	}
	*key_nextp = next_min;
	hammer2_cluster_resolve_focus(cluster);
	if (damaged && cluster->focus)
		cluster_note_unread(cluster, at, damaged, key_beg,
				    hammer2_bref_key_end(&cluster->focus->bref));
	return cluster;
}

hammer2_cluster_t *
hammer2_cluster_next(hammer2_cluster_t *cparent, hammer2_cluster_t *cluster,
		     hammer2_key_t *key_nextp, hammer2_key_t key_beg,
		     hammer2_key_t key_end, int flags)
{
	(void)key_beg;
	if (cluster) {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	}
	cparent->error = 0;
	if (*key_nextp == 0)
		return NULL;
	return hammer2_cluster_lookup(cparent, key_nextp, *key_nextp, key_end,
				      flags);
}

/* ------------------------------------------------------------ write side */

/*
 * Every write fans out to each live node's chain.  A node that fails is
 * failed (item_fail) and the operation goes on while at least one node
 * took it; whether that is enough is the quorum's call, at the next
 * write and at the flush (hammer2_quorum.c).
 */
static int
cluster_result(hammer2_cluster_t *cluster, int first_error, int done)
{
	hammer2_cluster_resolve_focus(cluster);
	if (done == 0)
		return first_error ? first_error :
		       hammer2_seterr(EROFS, "no live node holds the element");
	if (cluster->focus == NULL)
		return first_error ? first_error : cluster->error;
	return 0;
}

/*
 * A modification failed on one node: the node has missed it, so in a
 * cluster it is failed as a whole (no flush may commit it without this
 * change) and the others carry on.
 */
static int
item_fail(hammer2_cluster_t *cluster, hammer2_cluster_item_t *item,
	  hammer2_dev_t *hmp, int error, int *first)
{
	char what[200];

	item->error = error;
	if (*first == 0)
		*first = error;
	if (cluster->nchains > 1) {
		snprintf(what, sizeof(what), "%s", hammer2_errmsg());
		hammer2_node_fail(hmp, error, what);
	}
	return error;
}

/*
 * Before a modification: a live node that could not read the element (or
 * its way to it) would miss the change yet stay live at the cluster's
 * transaction, silently diverged; it is failed like a node whose write
 * failed, and the others carry on.  Every modification starts here, and
 * never of one node's chains only (a read's, HAMMER2_CLUSTER_PARTIAL).
 */
static void
cluster_fail_unread(hammer2_cluster_t *cluster)
{
	char what[240];
	int failed = 0;

	KKASSERT(!(cluster->flags & HAMMER2_CLUSTER_PARTIAL));
	if (cluster->nchains < 2)
		return;
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];
		hammer2_dev_t *hmp = item->chain ? item->chain->hmp : item->hmp;
		int error = item->error ? item->error :
			    item->chain ? item->chain->error : 0;

		if (error == 0 || hmp == NULL || !hammer2_node_live(hmp))
			continue;
		snprintf(what, sizeof(what), "%s: missed a modification it "
			 "could not read (%s)", hmp->path, strerror(error));
		hammer2_node_fail(hmp, error, what);
		++failed;
	}
	if (failed)
		hammer2_cluster_resolve_focus(cluster);
}

int
hammer2_cluster_modify(hammer2_cluster_t *cluster, hammer2_tid_t mtid)
{
	int first = 0, done = 0;

	KKASSERT(focus_ok(cluster));
	cluster_fail_unread(cluster);
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];
		int error;

		if (!item_live(item))
			continue;
		error = hammer2_chain_modify(item->chain, mtid);
		if (error)
			item_fail(cluster, item, item->chain->hmp, error, &first);
		else
			++done;
	}
	return cluster_result(cluster, first, done);
}

/* Modify an inode and return its writable data (focus). */
hammer2_inode_data_t *
hammer2_cluster_modify_ip(hammer2_cluster_t *cluster, hammer2_tid_t mtid,
			  int *errorp)
{
	*errorp = hammer2_cluster_modify(cluster, mtid);
	if (*errorp)
		return NULL;
	/* the focus is a live node's chain, and each of those took it */
	KKASSERT(cluster->focus->flags & HAMMER2_CHAIN_MODIFIED);
	return &cluster->focus->data->ipdata;
}

/*
 * Copy the focus's data to the other nodes' (modified) chains.  Never
 * blockref tables: they hold node-local offsets.  Of an inode that means
 * the meta and name always, the 512-byte union only when it holds
 * embedded data rather than a blockset.
 */
int
hammer2_cluster_modsync(hammer2_cluster_t *cluster)
{
	hammer2_chain_t *focus = cluster->focus;
	size_t n;

	if (focus == NULL)
		return cluster->error;
	KKASSERT(focus_ok(cluster) && (focus->flags & HAMMER2_CHAIN_MODIFIED) &&
		 !(cluster->flags & HAMMER2_CLUSTER_PARTIAL));
	switch (focus->bref.type) {
	case HAMMER2_BREF_TYPE_INODE:
		n = (focus->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA) ?
		    sizeof(hammer2_inode_data_t) :
		    offsetof(hammer2_inode_data_t, u);
		break;
	case HAMMER2_BREF_TYPE_DATA:
	case HAMMER2_BREF_TYPE_DIRENT:
		n = focus->bytes;
		break;
	default:
		return 0;
	}
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];
		hammer2_chain_t *chain = item->chain;
		int error;

		if (!item_live(item) || chain == focus ||
		    !(chain->flags & HAMMER2_CHAIN_MODIFIED))
			continue;
		if (chain->bytes < n &&
		    (error = hammer2_chain_resize(chain, n, focus->bref.modify_tid)))
			return error;
		/* a data block's nodes share one copy of it */
		if (focus->bref.type == HAMMER2_BREF_TYPE_DATA &&
		    chain->bytes == focus->bytes &&
		    (chain->flags & focus->flags & HAMMER2_CHAIN_OWNED) &&
		    (error = hammer2_chain_data_share(chain, focus)) == 0) {
			chain->bref.embed = focus->bref.embed;
			chain->bref.methods = focus->bref.methods;
			continue;
		}
		/* embedded data turned into a (still empty) blockset */
		if (focus->bref.type == HAMMER2_BREF_TYPE_INODE &&
		    n < sizeof(hammer2_inode_data_t) &&
		    (chain->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA))
			memset(&chain->data->ipdata.u, 0, sizeof(chain->data->ipdata.u));
		memcpy(chain->data, focus->data, n);
		chain->bref.embed = focus->bref.embed;
		chain->bref.methods = focus->bref.methods;
		if (focus->bref.type == HAMMER2_BREF_TYPE_DIRENT)
			chain->bref.check = focus->bref.check;	/* short name */
	}
	return 0;
}

/* Check algorithm for the blocks the cluster's chains write next. */
void
hammer2_cluster_setmethod_check(hammer2_cluster_t *cluster, int check)
{
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_chain_t *chain = cluster->array[i].chain;

		if (chain)
			chain->bref.methods = (uint8_t)((chain->bref.methods & 0x0F) |
							HAMMER2_ENC_CHECK(check));
	}
}

int
hammer2_cluster_create(hammer2_cluster_t *cparent, hammer2_cluster_t **clusterp,
		       hammer2_key_t key, int keybits, int type, size_t bytes,
		       hammer2_tid_t mtid)
{
	hammer2_cluster_t *cluster = hammer2_cluster_alloc(cparent->nchains);
	int first = 0, done = 0;

	*clusterp = NULL;
	if (cluster == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	cluster_fail_unread(cparent);
	for (int i = 0; i < cparent->nchains; ++i) {
		hammer2_cluster_item_t *pitem = &cparent->array[i];
		hammer2_cluster_item_t *item = &cluster->array[i];
		int error;

		item->flags = HAMMER2_CITEM_INVALID;
		if (!item_live(pitem))
			continue;
		error = hammer2_chain_create(&pitem->chain, &item->chain, key,
					     keybits, type, bytes, mtid);
		if (error) {
			item_fail(cparent, item, pitem->chain->hmp, error, &first);
			continue;
		}
		item->flags = 0;
		++done;
	}
	if ((first = cluster_result(cluster, first, done)) != 0) {
		int error = first;

		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
		return error;
	}
	*clusterp = cluster;
	return 0;
}

int
hammer2_cluster_delete(hammer2_cluster_t *cluster, hammer2_tid_t mtid)
{
	int first = 0, done = 0;

	cluster_fail_unread(cluster);
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];
		int error;

		if (!item_live(item))
			continue;
		error = hammer2_chain_delete(item->chain, mtid);
		if (error)
			item_fail(cluster, item, item->chain->hmp, error, &first);
		else
			++done;
	}
	return done ? 0 : first ? first :
	       hammer2_seterr(EROFS, "no live node holds the element");
}

int
hammer2_cluster_resize(hammer2_cluster_t *cluster, size_t bytes,
		       hammer2_tid_t mtid)
{
	int first = 0, done = 0;

	cluster_fail_unread(cluster);
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];
		int error;

		if (!item_live(item))
			continue;
		error = hammer2_chain_resize(item->chain, bytes, mtid);
		if (error)
			item_fail(cluster, item, item->chain->hmp, error, &first);
		else
			++done;
	}
	return cluster_result(cluster, first, done);
}
