/*
 * The resync walk's view of a level: element lists gathered through
 * indirect blocks (passing over those that do not load), and the sources
 * an element can be served from, tried in order, so whatever one node
 * cannot read comes from another.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_resync.h"

#define LOCK_HOW(shared)	((shared) ? HAMMER2_RESOLVE_SHARED : 0)
#define LOOKUP_HOW(shared)	((shared) ? HAMMER2_LOOKUP_SHARED : 0)

static int
elems_add(struct elems *e, const struct elem *el)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 64;
		struct elem *v = realloc(e->v, cap * sizeof(*v));

		if (v == NULL)
			return hammer2_seterr(ENOMEM, "out of memory");
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = *el;
	return 0;
}

static int
elems_push(struct elems *e, const hammer2_blockref_t *bref)
{
	struct elem el = { bref->key, bref->type, bref->keybits,
			   bref->modify_tid, bref->mirror_tid, 0,
			   bref->data_off };

	return elems_add(e, &el);
}

static int
elems_bad(struct elems *e, hammer2_chain_t *chain)
{
	hammer2_chain_t **bad = realloc(e->bad, (e->nbad + 1) * sizeof(*bad));

	if (bad == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	hammer2_chain_ref(chain);
	bad[e->nbad++] = chain;
	e->bad = bad;
	return 0;
}

void
elems_free(struct elems *e)
{
	for (size_t i = 0; i < e->nbad; ++i)
		hammer2_chain_drop(e->bad[i]);
	free(e->bad);
	free(e->v);
	memset(e, 0, sizeof(*e));
}

/* Elements are the same one by key and type. */
int
elem_cmp(const struct elem *a, const struct elem *b)
{
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return a->type == b->type ? 0 : a->type < b->type ? -1 : 1;
}

/* ... and among the same, the first source's listing first. */
static int
elem_qcmp(const void *a, const void *b)
{
	const struct elem *x = a, *y = b;
	int cmp = elem_cmp(x, y);

	return cmp ? cmp : x->src == y->src ? 0 : x->src < y->src ? -1 : 1;
}

/*
 * The leaf elements in [beg, end] directly under an inode (or the volume
 * root).  An indirect block that does not load is passed over, kept in
 * e->bad, and the scan goes on past its key range.  An error of parent
 * itself, or one that is no media damage, is returned.
 */
int
elems_collect(hammer2_chain_t *parent, struct elems *e, int shared,
	      hammer2_key_t beg, hammer2_key_t end)
{
	int flags = HAMMER2_LOOKUP_NODATA | LOOKUP_HOW(shared);
	hammer2_chain_t *p, *c, *up;
	hammer2_key_t next, bad_end;
	int error;

	hammer2_chain_ref(parent);
	hammer2_chain_lock(parent, LOCK_HOW(shared));
	p = parent;
	c = hammer2_chain_lookup(&p, &next, beg, end, &error, flags);
	for (;;) {
		while (c) {
			if ((error = elems_push(e, &c->bref)) != 0)
				break;
			c = hammer2_chain_next(&p, c, &next, beg, end, &error,
					       flags);
		}
		if (c || error == 0 || p == parent || p->error == 0 ||
		    error == ENOTCONN)
			break;
		/* p: an indirect block that failed its read or check */
		if ((error = elems_bad(e, p)) != 0)
			break;
		bad_end = hammer2_bref_key_end(&p->bref);
		if (bad_end >= end)
			break;
		up = p->parent;
		hammer2_chain_ref(up);
		hammer2_chain_lock(up, LOCK_HOW(shared));
		hammer2_chain_unlock(p);
		hammer2_chain_drop(p);
		p = up;
		c = hammer2_chain_lookup(&p, &next, bad_end + 1, end, &error,
					 flags);
	}
	if (c) {
		hammer2_chain_unlock(c);
		hammer2_chain_drop(c);
	}
	hammer2_chain_unlock(p);
	hammer2_chain_drop(p);
	return error;
}

/* The element (key, type) directly under parent, locked, or NULL. */
hammer2_chain_t *
elem_lookup(hammer2_chain_t *parent, const struct elem *el, int shared,
	    int flags, int *errorp)
{
	hammer2_chain_t *p, *c;
	hammer2_key_t next;

	flags |= LOOKUP_HOW(shared);
	hammer2_chain_ref(parent);
	hammer2_chain_lock(parent, LOCK_HOW(shared));
	p = parent;
	c = hammer2_chain_lookup(&p, &next, el->key, el->key, errorp, flags);
	while (c && c->bref.type != el->type)
		c = hammer2_chain_next(&p, c, &next, el->key, el->key, errorp,
				       flags);
	hammer2_chain_unlock(p);
	hammer2_chain_drop(p);
	return c;
}

/* The volume roots of the sources, where every walk starts. */
void
srcs_top(struct resync *rs, struct srcs *top)
{
	memset(top, 0, sizeof(*top));
	for (int k = 0; k < rs->nsrc; ++k)
		top->c[k] = rs->src[k]->vchain;
	top->looked = (1u << rs->nsrc) - 1;
}

void
srcs_init(struct srcs *s, struct srcs *up, const struct elem *el)
{
	memset(s, 0, sizeof(*s));
	s->up = up;
	s->el = *el;
}

void
srcs_done(struct srcs *s)
{
	for (int k = 0; k < HAMMER2_MAXCLUSTER; ++k) {
		if ((s->held & (1u << k)) && s->c[k]) {
			hammer2_chain_unlock(s->c[k]);
			hammer2_chain_drop(s->c[k]);
		}
	}
	s->held = 0;
}

/* The element's chain on source k (data not loaded), or NULL. */
static hammer2_chain_t *
src_chain(struct srcs *s, int k)
{
	hammer2_chain_t *p;
	int error;

	if (s->looked & (1u << k))
		return s->c[k];
	s->looked |= 1u << k;
	p = s->up ? src_chain(s->up, k) : NULL;
	if (p && hammer2_chain_load_data(p) == 0) {
		s->c[k] = elem_lookup(p, &s->el, 1, HAMMER2_LOOKUP_NODATA,
				      &error);
		if (s->c[k])
			s->held |= 1u << k;
		else if (error == ENOTCONN || error == ENOMEM)
			s->fatal = error;
	}
	return s->c[k];
}

/*
 * The element from the first source holding it in the listed version
 * whose copy reads and checks; its data loaded.  NULL: none can serve,
 * *errorp set when that is no media damage (a source disconnected).
 */
hammer2_chain_t *
srcs_get(struct resync *rs, struct srcs *s, int *errorp)
{
	for (int k = 0; k < rs->nsrc; ++k) {
		hammer2_chain_t *c = src_chain(s, k);
		int error;

		if (c == NULL || c->bref.modify_tid != s->el.modify_tid)
			continue;
		if ((error = hammer2_chain_load_data(c)) == 0)
			return c;
		if (error == ENOTCONN || error == ENOMEM)
			s->fatal = error;
	}
	*errorp = s->fatal;
	return NULL;
}

/*
 * List the elements in [beg, end] under s: the first source's, and while a listing has
 * holes (indirect blocks that do not load), the next source's too; the
 * union, each element as the first source listing it has it.
 */
int
srcs_collect(struct resync *rs, struct srcs *s, struct srcs_level *lv,
	     hammer2_key_t beg, hammer2_key_t end)
{
	int error = 0;
	size_t w = 0;

	memset(lv, 0, sizeof(*lv));
	for (int k = 0; k < rs->nsrc; ++k) {
		hammer2_chain_t *c = src_chain(s, k);
		struct elems e = { 0 };
		int complete;

		if (c == NULL || hammer2_chain_load_data(c) != 0)
			continue;
		if ((error = elems_collect(c, &e, 1, beg, end)) != 0) {
			elems_free(&e);
			if (error == ENOMEM)
				return error;
			error = 0;
			continue;
		}
		for (size_t i = 0; i < e.n && error == 0; ++i) {
			e.v[i].src = k;
			error = elems_add(&lv->e, &e.v[i]);
		}
		complete = e.nbad == 0;
		lv->holes[k].bad = e.bad;
		lv->holes[k].nbad = e.nbad;
		e.bad = NULL;
		e.nbad = 0;
		elems_free(&e);
		lv->listed |= 1u << k;
		if (error || complete)
			break;
	}
	if (error || lv->e.n == 0)
		return error;
	qsort(lv->e.v, lv->e.n, sizeof(*lv->e.v), elem_qcmp);
	for (size_t i = 0; i < lv->e.n; ++i) {
			if (w && elem_cmp(&lv->e.v[w - 1], &lv->e.v[i]) == 0)
			continue;
		lv->e.v[w++] = lv->e.v[i];
	}
	lv->e.n = w;
	return 0;
}

static int
in_holes(const struct elems *holes, hammer2_key_t key)
{
	for (size_t i = 0; i < holes->nbad; ++i) {
		const hammer2_blockref_t *b = &holes->bad[i]->bref;

		if (key >= b->key && key <= hammer2_bref_key_end(b))
			return 1;
	}
	return 0;
}

/* Some key of [beg, end] is one no listed source could read. */
static int
unknown_at(const struct srcs_level *lv, hammer2_key_t key)
{
	for (int k = 0; k < HAMMER2_MAXCLUSTER; ++k)
		if ((lv->listed & (1u << k)) && !in_holes(&lv->holes[k], key))
			return 0;
	return 1;
}

int
srcs_unknown(const struct srcs_level *lv, hammer2_key_t beg, hammer2_key_t end)
{
	/* holes are intervals: where they all overlap starts at one's start */
	if (unknown_at(lv, beg))
		return 1;
	for (int k = 0; k < HAMMER2_MAXCLUSTER; ++k) {
		for (size_t i = 0; i < lv->holes[k].nbad; ++i) {
			hammer2_key_t at = lv->holes[k].bad[i]->bref.key;

			if (at > beg && at <= end && unknown_at(lv, at))
				return 1;
		}
	}
	return 0;
}

void
srcs_level_free(struct srcs_level *lv)
{
	elems_free(&lv->e);
	for (int k = 0; k < HAMMER2_MAXCLUSTER; ++k)
		elems_free(&lv->holes[k]);
}
