/*
 * Self-heal on read, the rewrite: before a cluster flush, what a node's
 * notes (hammer2_heal.c) name is rewritten on it from the nodes that
 * served it, copy-on-write like any modification (hammer2_resync_heal
 * merges the key range under the inode holding it), and counted in the
 * node's status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "hammer2_cluster.h"

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
		struct hammer2_heal *h = hammer2_heal_take(devs[i]), *next;
		uint64_t healed = 0;
		int error = 0;

		/* no room for more: the heal waits for a scrub */
		for (; h; h = next) {
			next = h->next;
			if (error == 0 && hammer2_node_live(devs[i]) &&
			    hammer2_flush_fits(devs[i]))
				error = heal_one(h, &healed);
			hammer2_heal_free(h);
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
