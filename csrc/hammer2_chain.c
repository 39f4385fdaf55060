/*
 * Chain layer: the in-memory view of one node's block tree.
 *
 * A chain wraps one blockref and, once resolved, the media it points to
 * (through a DIO buffer, verified against the blockref's check code).  A
 * chain references its parent, so a chain keeps the path above it alive.
 * Lookups walk blockref arrays (volume header, inode blocksets, indirect
 * blocks) over a key range, descending through indirect blocks
 * transparently; *parentp follows the walk, as in the kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

hammer2_key_t
hammer2_bref_key_end(const hammer2_blockref_t *bref)
{
	hammer2_key_t span;

	if (bref->keybits >= 64)
		return HAMMER2_KEY_MAX;
	span = (1ULL << bref->keybits) - 1;
	if (bref->key > HAMMER2_KEY_MAX - span)
		return HAMMER2_KEY_MAX;
	return bref->key + span;
}

hammer2_chain_t *
hammer2_chain_alloc(hammer2_dev_t *hmp, const hammer2_blockref_t *bref)
{
	hammer2_chain_t *chain = calloc(1, sizeof(*chain));
	int radix = (int)(bref->data_off & HAMMER2_OFF_MASK_RADIX);

	if (chain == NULL)
		return NULL;
	chain->bref = *bref;
	chain->hmp = hmp;
	chain->refs = 1;
	chain->bytes = radix ? (radix < 32 ? 1U << radix : 0) : 0;
	pthread_rwlock_init(&chain->lock, NULL);
	pthread_mutex_init(&chain->dlock, NULL);
	return chain;
}

void
hammer2_chain_ref(hammer2_chain_t *chain)
{
	__atomic_add_fetch(&chain->refs, 1, __ATOMIC_ACQ_REL);
}

/* Dropping the last reference frees the chain and releases its parent. */
void
hammer2_chain_drop(hammer2_chain_t *chain)
{
	while (chain && __atomic_sub_fetch(&chain->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		hammer2_chain_t *parent = chain->parent;

		hammer2_io_putblk(&chain->dio);
		pthread_rwlock_destroy(&chain->lock);
		pthread_mutex_destroy(&chain->dlock);
		free(chain);
		chain = parent;
	}
}

void
hammer2_chain_lock(hammer2_chain_t *chain, int how)
{
	if (how & HAMMER2_RESOLVE_SHARED)
		pthread_rwlock_rdlock(&chain->lock);
	else
		pthread_rwlock_wrlock(&chain->lock);
}

void
hammer2_chain_unlock(hammer2_chain_t *chain)
{
	pthread_rwlock_unlock(&chain->lock);
}

void
hammer2_chain_describe(const hammer2_chain_t *chain, char *buf, size_t size)
{
	snprintf(buf, size, "%s block at 0x%llx (%u bytes, key 0x%llx)",
		 hammer2_bref_type_name(chain->bref.type),
		 (unsigned long long)(chain->bref.data_off & HAMMER2_OFF_MASK),
		 chain->bytes, (unsigned long long)chain->bref.key);
}

static int
chain_fail(hammer2_chain_t *chain, int error)
{
	char what[160];

	hammer2_chain_describe(chain, what, sizeof(what));
	chain->error = error;
	return hammer2_preerr(error, "%s", what);
}

/* Blockref arrays must hold non-overlapping, ascending entries. */
static int
base_validate(hammer2_chain_t *chain)
{
	hammer2_blockref_t *base;
	hammer2_key_t prev_end = 0;
	int have_prev = 0;
	int count;

	base = hammer2_chain_base(chain, &count);
	for (int i = 0; i < count; ++i) {
		if (base[i].type == HAMMER2_BREF_TYPE_EMPTY)
			continue;
		if (have_prev && base[i].key <= prev_end)
			return hammer2_seterr(EINVAL, "blockref %d (key 0x%llx) "
					      "overlaps or is out of order", i,
					      (unsigned long long)base[i].key);
		prev_end = hammer2_bref_key_end(&base[i]);
		have_prev = 1;
	}
	return 0;
}

static int
size_validate(hammer2_chain_t *chain)
{
	int radix = (int)(chain->bref.data_off & HAMMER2_OFF_MASK_RADIX);

	if (radix < HAMMER2_RADIX_MIN || radix > HAMMER2_RADIX_MAX)
		return hammer2_seterr(EINVAL, "invalid size radix %d", radix);
	if (chain->bref.type == HAMMER2_BREF_TYPE_INODE &&
	    chain->bytes != HAMMER2_INODE_BYTES)
		return hammer2_seterr(EINVAL, "inode is %u bytes, not %d",
				      chain->bytes, HAMMER2_INODE_BYTES);
	return 0;
}

/*
 * Resolve the chain's media: read it through the DIO layer and verify the
 * check code (once per DIO load).  A failure is remembered in
 * chain->error.
 */
int
hammer2_chain_load_data(hammer2_chain_t *chain)
{
	hammer2_off_t off = chain->bref.data_off & HAMMER2_OFF_MASK;
	hammer2_io_t *dio = NULL;
	int error;

	if (__atomic_load_n(&chain->flags, __ATOMIC_ACQUIRE) &
	    HAMMER2_CHAIN_LOADED)
		return chain->error;
	pthread_mutex_lock(&chain->dlock);
	if (chain->flags & HAMMER2_CHAIN_LOADED) {
		pthread_mutex_unlock(&chain->dlock);
		return chain->error;
	}
	error = 0;
	if (chain->bref.data_off != 0) {
		error = size_validate(chain);
		if (error == 0)
			error = hammer2_io_bread(chain->hmp, off,
						 (int)chain->bytes, &dio);
		if (error == 0 && !hammer2_io_crc_good(dio, off, chain->bytes)) {
			error = hammer2_check_verify(&chain->bref,
						     hammer2_io_data(dio, off),
						     chain->bytes);
			if (error == 0)
				hammer2_io_crc_setmask(dio, off, chain->bytes);
		}
		if (error == 0) {
			chain->dio = dio;
			chain->data = hammer2_io_data(dio, off);
			error = base_validate(chain);
		} else {
			hammer2_io_putblk(&dio);
		}
		if (error)
			chain_fail(chain, error);
	}
	__atomic_or_fetch(&chain->flags, HAMMER2_CHAIN_LOADED, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&chain->dlock);
	return error;
}

/* The blockref array a (loaded) chain carries, if any. */
hammer2_blockref_t *
hammer2_chain_base(hammer2_chain_t *chain, int *countp)
{
	*countp = 0;
	if (chain->data == NULL)
		return NULL;
	switch (chain->bref.type) {
	case HAMMER2_BREF_TYPE_VOLUME:
		*countp = HAMMER2_SET_COUNT;
		return chain->data->voldata.sroot_blockset.blockref;
	case HAMMER2_BREF_TYPE_FREEMAP:
		*countp = HAMMER2_SET_COUNT;
		return chain->data->voldata.freemap_blockset.blockref;
	case HAMMER2_BREF_TYPE_INODE:
		if (chain->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA)
			return NULL;
		*countp = HAMMER2_SET_COUNT;
		return chain->data->ipdata.u.blockset.blockref;
	case HAMMER2_BREF_TYPE_INDIRECT:
	case HAMMER2_BREF_TYPE_FREEMAP_NODE:
		*countp = (int)(chain->bytes / sizeof(hammer2_blockref_t));
		return chain->data->npdata;
	default:
		return NULL;
	}
}

static int
is_indirect(int type)
{
	return type == HAMMER2_BREF_TYPE_INDIRECT ||
	       type == HAMMER2_BREF_TYPE_FREEMAP_NODE;
}

/* First non-empty element whose range reaches key_beg (arrays are sorted). */
static int
base_find(hammer2_chain_t *parent, hammer2_blockref_t *base, int count,
	  hammer2_key_t key_beg)
{
	int i = parent->cache_index;

	if (i >= count)
		i = count ? count - 1 : 0;
	while (i > 0 && (base[i - 1].type == HAMMER2_BREF_TYPE_EMPTY ||
			 hammer2_bref_key_end(&base[i - 1]) >= key_beg))
		--i;
	while (i < count && (base[i].type == HAMMER2_BREF_TYPE_EMPTY ||
			     hammer2_bref_key_end(&base[i]) < key_beg))
		++i;
	parent->cache_index = i;
	return i;
}

static hammer2_chain_t *
chain_get(hammer2_chain_t *parent, const hammer2_blockref_t *bref, int *errorp)
{
	hammer2_chain_t *chain;

	if (parent->depth >= HAMMER2_CHAIN_DEPTH_MAX) {
		*errorp = hammer2_seterr(EINVAL, "blockref tree deeper than %d "
					 "levels at key 0x%llx (loop?)",
					 HAMMER2_CHAIN_DEPTH_MAX,
					 (unsigned long long)bref->key);
		return NULL;
	}
	chain = hammer2_chain_alloc(parent->hmp, bref);
	if (chain == NULL) {
		*errorp = hammer2_seterr(ENOMEM, "out of memory");
		return NULL;
	}
	hammer2_chain_ref(parent);
	chain->parent = parent;
	chain->depth = parent->depth + 1;
	return chain;
}

/* Replace the locked, referenced *parentp with next (already ref+locked). */
static void
parent_replace(hammer2_chain_t **parentp, hammer2_chain_t *next)
{
	hammer2_chain_unlock(*parentp);
	hammer2_chain_drop(*parentp);
	*parentp = next;
}

/*
 * Return the first leaf chain (locked and referenced) overlapping
 * [key_beg, key_end] under *parentp, or NULL.  Indirect blocks are
 * descended and ascended as needed and *parentp is updated to the block
 * the result lives in.  *key_nextp is set just past the result (0 when
 * the key space wrapped).  The top-level *parentp must not itself be an
 * indirect block.
 */
hammer2_chain_t *
hammer2_chain_lookup(hammer2_chain_t **parentp, hammer2_key_t *key_nextp,
		     hammer2_key_t key_beg, hammer2_key_t key_end,
		     int *errorp, int flags)
{
	int how = (flags & HAMMER2_LOOKUP_SHARED) ? HAMMER2_RESOLVE_SHARED : 0;
	hammer2_chain_t *parent;
	hammer2_chain_t *chain;
	hammer2_blockref_t *base;
	int count;
	int i;

	*errorp = 0;
	*key_nextp = 0;
	for (;;) {
		parent = *parentp;
		if (key_beg > key_end)
			return NULL;
		*errorp = hammer2_chain_load_data(parent);
		if (*errorp)
			return NULL;
		base = hammer2_chain_base(parent, &count);
		i = base_find(parent, base, count, key_beg);
		if (i >= count || base[i].key > key_end) {
			/* exhausted this block: continue in the one above */
			hammer2_key_t end = hammer2_bref_key_end(&parent->bref);

			if (!is_indirect(parent->bref.type) || parent->parent == NULL ||
			    end == HAMMER2_KEY_MAX)
				return NULL;
			if (end + 1 > key_beg)
				key_beg = end + 1;
			hammer2_chain_ref(parent->parent);
			hammer2_chain_lock(parent->parent, how);
			parent_replace(parentp, parent->parent);
			continue;
		}
		chain = chain_get(parent, &base[i], errorp);
		if (chain == NULL)
			return NULL;
		hammer2_chain_lock(chain, how);
		if (is_indirect(chain->bref.type)) {
			parent_replace(parentp, chain);
			continue;
		}
		if (!(flags & HAMMER2_LOOKUP_NODATA)) {
			*errorp = hammer2_chain_load_data(chain);
			if (*errorp) {
				hammer2_chain_unlock(chain);
				hammer2_chain_drop(chain);
				return NULL;
			}
		}
		*key_nextp = hammer2_bref_key_end(&chain->bref) + 1;
		return chain;
	}
}

/* Release chain and return the next leaf after it within the range. */
hammer2_chain_t *
hammer2_chain_next(hammer2_chain_t **parentp, hammer2_chain_t *chain,
		   hammer2_key_t *key_nextp, hammer2_key_t key_beg,
		   hammer2_key_t key_end, int *errorp, int flags)
{
	(void)key_beg;
	if (chain) {
		hammer2_chain_unlock(chain);
		hammer2_chain_drop(chain);
	}
	*errorp = 0;
	if (*key_nextp == 0)
		return NULL;
	return hammer2_chain_lookup(parentp, key_nextp, *key_nextp, key_end,
				    errorp, flags);
}
