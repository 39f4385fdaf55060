/*
 * What the kernel caches of a mount, and what the server itself changes
 * behind it.  Names and attributes are cached for an hour (ENTRY_TIMEOUT,
 * ATTR_TIMEOUT): an image has one writer, this server, and every change
 * to a name or an attribute arrives as a request the kernel made, after
 * which it drops what it cached.  Commits, bulkfree, self-heal and resync
 * rewrite blocks, not what an inode means, with one exception: st_blocks
 * is the data_count a commit computes.  So the inodes whose data changed
 * since the last commit are kept here, and a commit that wrote them tells
 * the kernel to ask again.
 *
 * The set is only touched inside exclusive PFS transactions (every
 * modification, every commit): it needs no lock of its own.
 */
#include <stdlib.h>
#include <string.h>
#include "hammer2_fuse_priv.h"

#define DIRTY_MIN	64		/* slots of a new set, a power of 2 */
#define DIRTY_KEEP	4096		/* a larger set is freed once committed */

/* Open addressing over FUSE inode numbers; 0 (never one) is empty. */
static size_t
dirty_slot(const hammer2_fuse_dirty_t *d, fuse_ino_t ino)
{
	size_t i = (size_t)(ino * 0x9E3779B97F4A7C15ULL) & (d->cap - 1);

	while (d->slots[i] != 0 && d->slots[i] != ino)
		i = (i + 1) & (d->cap - 1);
	return i;
}

static int
dirty_grow(hammer2_fuse_dirty_t *d)
{
	hammer2_fuse_dirty_t n = { NULL, d->cap ? d->cap * 2 : DIRTY_MIN, 0,
				   d->tid };

	if ((n.slots = calloc(n.cap, sizeof(*n.slots))) == NULL)
		return ENOMEM;
	for (size_t i = 0; i < d->cap; ++i) {
		if (d->slots[i] != 0) {
			n.slots[dirty_slot(&n, d->slots[i])] = d->slots[i];
			++n.count;
		}
	}
	KKASSERT(n.count == d->count);
	free(d->slots);
	*d = n;
	return 0;
}

int
hammer2_fuse_dirty(hammer2_fuse_t *f, fuse_ino_t ino)
{
	hammer2_fuse_dirty_t *d = &f->dirty;
	size_t i;

	KKASSERT(ino != 0);
	if ((d->count + 1) * 2 > d->cap && dirty_grow(d) != 0)
		return hammer2_seterr(ENOMEM, "out of memory");
	i = dirty_slot(d, ino);
	if (d->slots[i] == 0) {
		d->slots[i] = ino;
		++d->count;
	}
	return 0;
}

/*
 * Once a commit wrote the set (whatever made it: the mount's triggers, or
 * space admission making room), the kernel forgets the attributes of
 * every inode in it; a notification never waits (no writeback cache).
 * A commit that did not write keeps the set; a session that is ending
 * tells the kernel nothing (its session may be gone).
 */
void
hammer2_fuse_dirty_sync(hammer2_fuse_t *f)
{
	hammer2_fuse_dirty_t *d = &f->dirty;
	hammer2_tid_t tid = hammer2_space_tid(f->pfs);

	if (tid == d->tid)
		return;
	d->tid = tid;
	if (d->count == 0)
		return;
	if (!__atomic_load_n(&f->stopping, __ATOMIC_ACQUIRE)) {
		for (size_t i = 0; i < d->cap; ++i) {
			if (d->slots[i] != 0)
				fuse_lowlevel_notify_inval_inode(f->se,
						d->slots[i], -1, 0);
		}
	}
	if (d->cap > DIRTY_KEEP) {
		hammer2_fuse_dirty_free(f);
	} else {
		memset(d->slots, 0, d->cap * sizeof(*d->slots));
		d->count = 0;
	}
}

void
hammer2_fuse_dirty_free(hammer2_fuse_t *f)
{
	free(f->dirty.slots);
	f->dirty.slots = NULL;
	f->dirty.cap = f->dirty.count = 0;
}
