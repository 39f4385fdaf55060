/*
 * The rest of the cluster API: state queries, parents, waiting for
 * resolution and the raw scan of a blockref array.  Each works on all N
 * chains, one per node.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_cluster.h"

/*
 * The element's blockref as the cluster presents it: the focus's, with
 * the node-local media offset removed (the size radix kept).
 */
void
hammer2_cluster_bref_logical(const hammer2_cluster_t *cluster,
			     hammer2_blockref_t *bref)
{
	const hammer2_blockref_t *focus = hammer2_cluster_bref(cluster);

	memset(bref, 0, sizeof(*bref));
	if (focus == NULL)
		return;
	*bref = *focus;
	bref->data_off &= HAMMER2_OFF_MASK_RADIX;
}

/* Whether the element has modifications not yet flushed (on its focus). */
int
hammer2_cluster_modified(hammer2_cluster_t *cluster)
{
	return cluster->focus &&
	       (cluster->focus->flags & HAMMER2_CHAIN_MODIFIED) != 0;
}

/*
 * Wait for the element to be resolved on every usable node: each
 * chain's data is loaded and verified; a node that fails is left out of
 * the element.  Returns an error only when no node could serve it.
 */
int
hammer2_cluster_wait(hammer2_cluster_t *cluster)
{
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_cluster_item_t *item = &cluster->array[i];
		int error;

		if (item->chain == NULL || (item->flags & HAMMER2_CITEM_INVALID) ||
		    item->error)
			continue;
		error = hammer2_chain_load_data(item->chain);
		if (error) {
			item->error = error;
			hammer2_node_read_error(item->chain->hmp, error,
						hammer2_errmsg());
		}
	}
	hammer2_cluster_resolve_focus(cluster);
	return cluster->focus ? 0 : cluster->error;
}

/* The parents of the cluster's chains, as a new (unlocked) cluster. */
hammer2_cluster_t *
hammer2_cluster_parent(hammer2_cluster_t *cluster)
{
	hammer2_cluster_t *parent = hammer2_cluster_alloc(cluster->nchains);
	int any = 0;

	if (parent == NULL)
		return NULL;
	parent->flags = cluster->flags & HAMMER2_CLUSTER_PARTIAL;
	for (int i = 0; i < cluster->nchains; ++i) {
		hammer2_chain_t *chain = cluster->array[i].chain;

		parent->array[i].flags = HAMMER2_CITEM_INVALID;
		if (chain == NULL || chain->parent == NULL ||
		    (cluster->array[i].flags & HAMMER2_CITEM_INVALID))
			continue;
		hammer2_chain_ref(chain->parent);
		parent->array[i].chain = chain->parent;
		parent->array[i].flags = 0;
		any = 1;
	}
	if (!any) {
		hammer2_cluster_drop(parent);
		return NULL;
	}
	hammer2_cluster_resolve_focus(parent);
	return parent;
}

/*
 * Raw iteration over the blockref array of cparent's chains (locked by
 * the caller): the elements directly in it, indirect blocks included and
 * not descended, in key order, merged across nodes like a lookup.  Pass
 * NULL to start, the previous result to go on (it is released); NULL at
 * the end, with cparent->error set if no node could be read.
 */
hammer2_cluster_t *
hammer2_cluster_scan(hammer2_cluster_t *cparent, hammer2_cluster_t *cluster,
		     int flags)
{
	int how = (flags & HAMMER2_LOOKUP_SHARED) ? HAMMER2_RESOLVE_SHARED : 0;
	hammer2_key_t key_beg = 0, key_min = HAMMER2_KEY_MAX;
	hammer2_cluster_t *next;
	int found = 0, answered = 0, error = 0;

	if (cluster) {
		const hammer2_blockref_t *b = hammer2_cluster_bref(cluster);

		key_beg = b ? hammer2_bref_key_end(b) + 1 : 0;
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
		if (key_beg == 0)		/* wrapped: the end */
			return NULL;
	}
	cparent->error = 0;
	next = hammer2_cluster_alloc(cparent->nchains);
	if (next == NULL) {
		cparent->error = hammer2_seterr(ENOMEM, "out of memory");
		return NULL;
	}
	next->flags = cparent->flags & HAMMER2_CLUSTER_PARTIAL;
	for (int i = 0; i < cparent->nchains; ++i) {
		hammer2_cluster_item_t *pitem = &cparent->array[i];
		hammer2_blockref_t *base;
		int count, e;

		next->array[i].flags = HAMMER2_CITEM_INVALID;
		if (pitem->chain == NULL || (pitem->flags & HAMMER2_CITEM_INVALID) ||
		    pitem->error)
			continue;
		if ((e = hammer2_chain_load_data(pitem->chain)) != 0) {
			if (error == 0)
				error = e;
			continue;
		}
		++answered;
		base = hammer2_chain_base(pitem->chain, &count);
		for (int k = 0; base && k < count; ++k) {
			if (base[k].type == HAMMER2_BREF_TYPE_EMPTY ||
			    base[k].key < key_beg)
				continue;
			next->array[i].chain = hammer2_chain_get(pitem->chain,
								 &base[k], &e);
			if (next->array[i].chain == NULL) {
				next->array[i].error = e;
				break;
			}
			next->array[i].flags = 0;
			if (!found || base[k].key < key_min)
				key_min = base[k].key;
			found = 1;
			break;
		}
	}
	for (int i = 0; i < next->nchains; ++i) {
		hammer2_chain_t *chain = next->array[i].chain;

		if (chain == NULL)
			continue;
		if (chain->bref.key != key_min) {
			hammer2_chain_drop(chain);
			next->array[i].chain = NULL;
			next->array[i].flags = HAMMER2_CITEM_INVALID;
			continue;
		}
		hammer2_chain_lock(chain, how);
		if (!(flags & HAMMER2_LOOKUP_NODATA) &&
		    (error = hammer2_chain_load_data(chain)) != 0)
			next->array[i].error = error;
	}
	if (!found) {
		hammer2_cluster_drop(next);
		cparent->error = answered ? 0 : error;
		return NULL;
	}
	hammer2_cluster_resolve_focus(next);
	return next;
}

/*
 * Report the raw elements directly under inode inum (indirect blocks
 * included, not descended) with which nodes hold each: a scan under a
 * private copy of the inode's cluster, once every node resolved it.
 */
int
hammer2_cluster_scan_inode(hammer2_pfs_t *pfs, hammer2_tid_t inum,
			   hammer2_scan_cb_t cb, void *arg)
{
	hammer2_cluster_t *ip, *cparent, *cluster, *parent;
	hammer2_scan_elem_t el;
	int error;

	if ((error = hammer2_inode_get(pfs, inum, &ip)) != 0)
		return error;
	error = hammer2_cluster_wait(ip);
	cparent = error ? NULL : hammer2_cluster_copy(ip);
	hammer2_cluster_drop(ip);
	if (error)
		return error;
	if (cparent == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	hammer2_cluster_lock(cparent, HAMMER2_RESOLVE_SHARED);
	cluster = hammer2_cluster_scan(cparent, NULL, HAMMER2_LOOKUP_SHARED);
	while (cluster) {
		hammer2_blockref_t b;

		hammer2_cluster_bref_logical(cluster, &b);
		memset(&el, 0, sizeof(el));
		el.type = b.type;
		el.key = b.key;
		el.keybits = b.keybits;
		el.radix = (int)(b.data_off & HAMMER2_OFF_MASK_RADIX);
		el.data_off = b.data_off;
		el.modify_tid = b.modify_tid;
		el.modified = hammer2_cluster_modified(cluster);
		el.focus = cluster->focus_index;
		for (int i = 0; i < cluster->nchains; ++i)
			if (cluster->array[i].chain &&
			    !(cluster->array[i].flags & HAMMER2_CITEM_INVALID))
				el.nodes |= 1u << i;
		/* every node's chain hangs under that node's inode chain */
		parent = hammer2_cluster_parent(cluster);
		el.parent_ok = parent != NULL;
		for (int i = 0; parent && i < cluster->nchains; ++i)
			if ((el.nodes & (1u << i)) &&
			    parent->array[i].chain != cparent->array[i].chain)
				el.parent_ok = 0;
		if (parent)
			hammer2_cluster_drop(parent);
		if (cb(arg, &el))
			break;
		cluster = hammer2_cluster_scan(cparent, cluster, HAMMER2_LOOKUP_SHARED);
	}
	error = cluster ? 0 : cparent->error;
	if (cluster) {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	}
	hammer2_cluster_unlock(cparent);
	hammer2_cluster_drop(cparent);
	return error;
}
