/*
 * Self-heal on read, the notes.  When a live node cannot read an element
 * (its check or its read fails, or an indirect block on the way does)
 * while another node serves it, the read paths of the cluster layer note
 * it here, on the node; the next cluster flush rewrites what the notes
 * name (hammer2_heal_run.c).  Notes hold references on the chains
 * involved, so they are forgotten before any node of the cluster is
 * closed or swapped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_cluster.h"

#define HEAL_MAX	256	/* notes per node; a scrub finds the rest */

/* The inode (or volume root) whose level chain c is on: c, or above it. */
static hammer2_chain_t *
holder(hammer2_chain_t *c)
{
	while (c && c->bref.type != HAMMER2_BREF_TYPE_INODE &&
	       c->bref.type != HAMMER2_BREF_TYPE_VOLUME)
		c = c->parent;
	return c;
}

void
hammer2_heal_free(struct hammer2_heal *h)
{
	hammer2_chain_drop(h->dparent);
	for (int k = 0; k < HAMMER2_MAXCLUSTER; ++k)
		if (h->sparent[k])
			hammer2_chain_drop(h->sparent[k]);
	free(h);
}

/*
 * bad: the damaged node's chain at the level of the element (its parent,
 * or the indirect block that did not load); good: the element's chains on
 * the nodes that served it; [beg, end]: the keys to look at again.
 */
void
hammer2_heal_note(hammer2_chain_t *bad, hammer2_chain_t **good, int n,
		  hammer2_key_t beg, hammer2_key_t end)
{
	hammer2_chain_t *dparent = holder(bad);
	hammer2_dev_t *hmp;
	struct hammer2_heal *h, *o;
	int ngood = 0;

	if (dparent == NULL || dparent->hmp->readonly)
		return;
	hmp = dparent->hmp;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return;			/* a scrub still finds it */
	for (int k = 0; k < n && k < HAMMER2_MAXCLUSTER; ++k) {
		hammer2_chain_t *s = good[k] ? holder(good[k]->parent) : NULL;

		if (s && s->hmp != hmp) {
			hammer2_chain_ref(s);
			h->sparent[ngood++] = s;
		}
	}
	hammer2_chain_ref(dparent);
	h->dparent = dparent;
	h->beg = beg;
	h->end = end;
	pthread_mutex_lock(&hmp->faultlock);
	for (o = hmp->node.heals; o; o = o->next)
		if (o->dparent == dparent && o->beg <= end && beg <= o->end)
			break;
	if (o == NULL && ngood && hmp->node.nheals < HEAL_MAX) {
		h->next = hmp->node.heals;
		hmp->node.heals = h;
		++hmp->node.nheals;
		h = NULL;
	}
	pthread_mutex_unlock(&hmp->faultlock);
	if (h)
		hammer2_heal_free(h);
}

/* Take every note of a node (to rewrite or to drop them). */
struct hammer2_heal *
hammer2_heal_take(hammer2_dev_t *hmp)
{
	struct hammer2_heal *list;

	pthread_mutex_lock(&hmp->faultlock);
	list = hmp->node.heals;
	hmp->node.heals = NULL;
	hmp->node.nheals = 0;
	pthread_mutex_unlock(&hmp->faultlock);
	return list;
}

int
hammer2_heal_pending(hammer2_dev_t *hmp)
{
	return __atomic_load_n(&hmp->node.heals, __ATOMIC_ACQUIRE) != NULL &&
	       hammer2_node_live(hmp);
}

/* Drop every note of these nodes (before one of them goes). */
void
hammer2_heal_forget(hammer2_dev_t **devs, int ndevs)
{
	for (int i = 0; i < ndevs; ++i) {
		struct hammer2_heal *h = hammer2_heal_take(devs[i]), *next;

		for (; h; h = next) {
			next = h->next;
			hammer2_heal_free(h);
		}
	}
}
