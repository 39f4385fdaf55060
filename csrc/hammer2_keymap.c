/* hammer2_keymap.h by open addressing, at most half full. */
#include <errno.h>
#include <stdlib.h>
#include "hammer2.h"
#include "hammer2_keymap.h"

static hammer2_keymap_ent_t *
slot(const hammer2_keymap_t *m, uint64_t k1, uint64_t k2)
{
	size_t i = ((k1 ^ k2 * 0xC2B2AE3D27D4EB4FULL) * 0x9E3779B97F4A7C15ULL) &
		   (m->cap - 1);

	while (m->v[i].val && (m->v[i].k1 != k1 || m->v[i].k2 != k2))
		i = (i + 1) & (m->cap - 1);
	return &m->v[i];
}

uintptr_t
hammer2_keymap_get(const hammer2_keymap_t *m, uint64_t k1, uint64_t k2)
{
	return m->cap ? slot(m, k1, k2)->val : 0;
}

int
hammer2_keymap_put(hammer2_keymap_t *m, uint64_t k1, uint64_t k2,
		   uintptr_t val)
{
	hammer2_keymap_t old = *m;
	hammer2_keymap_ent_t *e;

	KKASSERT(val != 0);
	if ((m->count + 1) * 2 > m->cap) {	/* at most half full */
		m->cap = old.cap ? old.cap * 2 : 64;
		if ((m->v = calloc(m->cap, sizeof(*m->v))) == NULL) {
			*m = old;
			return hammer2_seterr(ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < old.cap; ++i)
			if (old.v[i].val)
				*slot(m, old.v[i].k1, old.v[i].k2) = old.v[i];
		free(old.v);
	}
	e = slot(m, k1, k2);
	KKASSERT(e->val == 0);
	e->k1 = k1;
	e->k2 = k2;
	e->val = val;
	m->count++;
	return 0;
}

/* Free the map, and each value with val_free unless NULL. */
void
hammer2_keymap_free(hammer2_keymap_t *m, void (*val_free)(void *))
{
	for (size_t i = 0; val_free && i < m->cap; ++i)
		if (m->v[i].val)
			val_free((void *)m->v[i].val);
	free(m->v);
	m->v = NULL;
	m->cap = m->count = 0;
}
