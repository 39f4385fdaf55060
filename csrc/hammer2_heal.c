/*
 * Self-heal on read.  When a live node cannot read an element (its check
 * or its read fails, or an indirect block on the way does) while another
 * node serves it, the read paths of the cluster layer note it here; the
 * next cluster flush rewrites it on that node from the nodes that served
 * it, copy-on-write like any modification (hammer2_resync_heal merges the
 * key range under the inode holding it), and counts it in the node's
 * status.  Notes hold references on the chains involved, so they are
 * forgotten before any node of the cluster is closed or swapped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_cluster.h"

#define HEAL_MAX	256	/* notes per node; a scrub finds the rest */

struct hammer2_heal {
	struct hammer2_heal	*next;
	hammer2_chain_t		*dparent;	/* holder on the damaged node */
	hammer2_chain_t		*sparent[HAMMER2_MAXCLUSTER]; /* on the others */
	hammer2_key_t		beg, end;
};

/* The inode (or volume root) whose level chain c is on: c, or above it. */
static hammer2_chain_t *
holder(hammer2_chain_t *c)
{
	while (c && c->bref.type != HAMMER2_BREF_TYPE_INODE &&
	       c->bref.type != HAMMER2_BREF_TYPE_VOLUME)
		c = c->parent;
	return c;
}

static void
heal_free(struct hammer2_heal *h)
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
		heal_free(h);
}

static struct hammer2_heal *
heals_take(hammer2_dev_t *hmp)
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

/* A chain and its parents up to the volume root, with their modify_tid. */
struct ancestry {
	hammer2_chain_t	*c[HAMMER2_CHAIN_DEPTH_MAX + 1];
	hammer2_tid_t	tid[HAMMER2_CHAIN_DEPTH_MAX + 1];
	int		n;
};

static void
ancestry_save(struct ancestry *a, hammer2_chain_t *c)
{
	for (a->n = 0; c && a->n <= HAMMER2_CHAIN_DEPTH_MAX; c = c->parent) {
		a->c[a->n] = c;
		a->tid[a->n++] = c->bref.modify_tid;
	}
}

/*
 * A rewrite changes where the element lies, not what it holds: the
 * modify_tid its parents took by the modification goes back, so the node
 * still agrees with the others element by element.
 */
static void
ancestry_restore(const struct ancestry *a)
{
	for (int i = 0; i < a->n; ++i)
		a->c[i]->bref.modify_tid = a->tid[i];
}

/* One note: the keys looked at again on its node, from the others. */
static int
heal_one(struct hammer2_heal *h, uint64_t *healedp)
{
	hammer2_resync_stats_t *st;
	hammer2_chain_t *src[HAMMER2_MAXCLUSTER] = { 0 };
	struct ancestry a;
	int error;

	if (h->dparent->flags & HAMMER2_CHAIN_DELETED)
		return 0;
	for (int k = 0; k < HAMMER2_MAXCLUSTER; ++k) {
		hammer2_chain_t *s = h->sparent[k];

		if (s && !(s->flags & HAMMER2_CHAIN_DELETED) &&
		    hammer2_node_live(s->hmp))
			src[k] = s;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	ancestry_save(&a, h->dparent);
	error = hammer2_resync_heal(h->dparent, src, HAMMER2_MAXCLUSTER, h->beg,
				    h->end, st);
	ancestry_restore(&a);
	*healedp += st->repaired;
	free(st);
	return error;
}

/*
 * Rewrite what the notes name on each live node, before a cluster flush
 * (callers hold every node's transaction lock exclusively).  A node whose
 * rewrite fails, or leaves it without room to commit, is failed (its
 * in-memory tree is changed, and the others' commit must go on); every
 * live node then commits, so they stay at one transaction.
 */
void
hammer2_heal_run(hammer2_dev_t **devs, int ndevs)
{
	int any = 0;

	/* reads that lost a race may still be failing: their notes first */
	for (int i = 0; i < ndevs; ++i)
		if (hammer2_node_live(devs[i]))
			hammer2_io_settle(devs[i]);
	for (int i = 0; i < ndevs; ++i) {
		struct hammer2_heal *h = heals_take(devs[i]), *next;
		uint64_t healed = 0;
		int error = 0;

		/* no room for more: the heal waits for a scrub */
		for (; h; h = next) {
			next = h->next;
			if (error == 0 && hammer2_node_live(devs[i]) &&
			    hammer2_flush_fits(devs[i]))
				error = heal_one(h, &healed);
			heal_free(h);
		}
		/* the commit must not be refused for what it rewrote */
		if (error == 0 && healed && !hammer2_flush_fits(devs[i]))
			error = hammer2_seterr(ENOSPC, "no room to commit what "
					       "it rewrote");
		if (error) {
			char why[192];

			snprintf(why, sizeof(why), "%s: self-heal: %s",
				 devs[i]->path, hammer2_errmsg());
			hammer2_node_fail(devs[i], error, why);
		}
		pthread_mutex_lock(&devs[i]->faultlock);
		devs[i]->node.healed += healed;
		pthread_mutex_unlock(&devs[i]->faultlock);
		any |= healed != 0;
	}
	for (int i = 0; any && i < ndevs; ++i) {
		int error;

		if (hammer2_node_live(devs[i]) &&
		    (error = hammer2_chain_modify(devs[i]->vchain,
						  devs[i]->mtid)) != 0)
			hammer2_node_fail(devs[i], error, hammer2_errmsg());
	}
}

/* Drop every note of these nodes (before one of them goes). */
void
hammer2_heal_forget(hammer2_dev_t **devs, int ndevs)
{
	for (int i = 0; i < ndevs; ++i) {
		struct hammer2_heal *h = heals_take(devs[i]), *next;

		for (; h; h = next) {
			next = h->next;
			heal_free(h);
		}
	}
}
