/*
 * A small map from a two-word key to a non-zero word (hammer2_keymap.c):
 * export's inodes already written, import's host files already copied,
 * fsck's directories already reached.
 */
#ifndef HAMMER2_KEYMAP_H
#define HAMMER2_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hammer2_keymap_ent {
	uint64_t	k1, k2;
	uintptr_t	val;		/* 0: a free slot */
} hammer2_keymap_ent_t;

typedef struct hammer2_keymap {
	hammer2_keymap_ent_t *v;
	size_t		count, cap;
} hammer2_keymap_t;

uintptr_t hammer2_keymap_get(const hammer2_keymap_t *m, uint64_t k1,
			     uint64_t k2);
int hammer2_keymap_put(hammer2_keymap_t *m, uint64_t k1, uint64_t k2,
		       uintptr_t val);
void hammer2_keymap_free(hammer2_keymap_t *m, void (*val_free)(void *));

#endif
