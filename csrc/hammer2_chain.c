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
	pthread_mutex_init(&chain->clock, NULL);
	return chain;
}

void
hammer2_chain_ref(hammer2_chain_t *chain)
{
	int refs = __atomic_fetch_add(&chain->refs, 1, __ATOMIC_ACQ_REL);

	/* a new reference comes from a held one (or the parent's list) */
	KKASSERT(refs > 0);
}

/* Index of the first live child with key >= key (parent->clock held). */
static int
children_find(hammer2_chain_t *parent, hammer2_key_t key)
{
	int lo = 0, hi = parent->nchildren;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (parent->children[mid]->bref.key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
children_insert(hammer2_chain_t *parent, hammer2_chain_t *child)
{
	int i;

	if (parent->nchildren == parent->maxchildren) {
		int n = parent->maxchildren ? parent->maxchildren * 2 : 8;
		hammer2_chain_t **p = realloc(parent->children, n * sizeof(*p));

		if (p == NULL)
			return ENOMEM;
		parent->children = p;
		parent->maxchildren = n;
	}
	i = children_find(parent, child->bref.key);
	memmove(&parent->children[i + 1], &parent->children[i],
		(size_t)(parent->nchildren - i) * sizeof(child));
	parent->children[i] = child;
	++parent->nchildren;
	return 0;
}

static void
children_remove(hammer2_chain_t *parent, hammer2_chain_t *child)
{
	KKASSERT(child->parent == parent);
	for (int i = children_find(parent, child->bref.key);
	     i < parent->nchildren; ++i) {
		if (parent->children[i] == child) {
			memmove(&parent->children[i], &parent->children[i + 1],
				(size_t)(parent->nchildren - i - 1) * sizeof(child));
			--parent->nchildren;
			return;
		}
	}
	KASSERT(0, ("chain of key 0x%llx missing from its parent's children",
		    (unsigned long long)child->bref.key));
}

static void
chain_free(hammer2_chain_t *chain)
{
	hammer2_io_putblk(&chain->dio);
	if (chain->flags & HAMMER2_CHAIN_OWNED)
		hammer2_chain_data_free(chain);
	free(chain->children);
	pthread_rwlock_destroy(&chain->lock);
	pthread_mutex_destroy(&chain->dlock);
	pthread_mutex_destroy(&chain->clock);
	free(chain);
}

/*
 * Drop a reference.  The last one unlinks the chain from its parent's
 * live children (under the parent's clock, so a concurrent lookup either
 * finds and references it first or does not find it at all), frees it and
 * releases the parent in turn.
 */
void
hammer2_chain_drop(hammer2_chain_t *chain)
{
	while (chain) {
		hammer2_chain_t *parent = chain->parent;
		int refs = __atomic_load_n(&chain->refs, __ATOMIC_ACQUIRE);

		KKASSERT(refs > 0);
		if (refs > 1) {
			if (__atomic_compare_exchange_n(&chain->refs, &refs, refs - 1,
							0, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE))
				return;
			continue;
		}
		if (parent)
			pthread_mutex_lock(&parent->clock);
		if (__atomic_sub_fetch(&chain->refs, 1, __ATOMIC_ACQ_REL) != 0) {
			if (parent)
				pthread_mutex_unlock(&parent->clock);
			return;
		}
		if (parent) {
			if (!(chain->flags & HAMMER2_CHAIN_DELETED))
				children_remove(parent, chain);
			pthread_mutex_unlock(&parent->clock);
		}
		chain_free(chain);
		chain = parent;
	}
}

/* Identifies the calling thread as an exclusive lock holder. */
static __thread char lock_token;

/*
 * As in the kernel, the thread holding a chain exclusively may lock it
 * again, shared or exclusive (a directory operation in the PFS root locks
 * the root both as the directory and as the inode index).  Shared locks
 * recurse through the rwlock itself; upgrading shared to exclusive is not
 * allowed.
 */
void
hammer2_chain_lock(hammer2_chain_t *chain, int how)
{
	KKASSERT(__atomic_load_n(&chain->refs, __ATOMIC_RELAXED) > 0);
	if (__atomic_load_n(&chain->lock_owner, __ATOMIC_RELAXED) == &lock_token) {
		++chain->lock_depth;
		return;
	}
	if (how & HAMMER2_RESOLVE_SHARED) {
		pthread_rwlock_rdlock(&chain->lock);
		return;
	}
	pthread_rwlock_wrlock(&chain->lock);
	__atomic_store_n(&chain->lock_owner, &lock_token, __ATOMIC_RELAXED);
	chain->lock_depth = 1;
}

void
hammer2_chain_unlock(hammer2_chain_t *chain)
{
	KKASSERT(__atomic_load_n(&chain->refs, __ATOMIC_RELAXED) > 0);
	if (__atomic_load_n(&chain->lock_owner, __ATOMIC_RELAXED) == &lock_token) {
		KKASSERT(chain->lock_depth > 0);
		if (--chain->lock_depth > 0)
			return;
		__atomic_store_n(&chain->lock_owner, NULL, __ATOMIC_RELAXED);
	}
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
		if (error == 0)
			error = hammer2_io_verify(dio, off, (int)chain->bytes,
						  &chain->bref);
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

/*
 * The chain for element bref of parent: the live one if it exists, else a
 * new one linked under parent.  Returned referenced, unlocked.
 */
hammer2_chain_t *
hammer2_chain_get(hammer2_chain_t *parent, const hammer2_blockref_t *bref,
		  int *errorp)
{
	hammer2_chain_t *chain;
	int i;

	if (parent->depth >= HAMMER2_CHAIN_DEPTH_MAX) {
		*errorp = hammer2_seterr(EINVAL, "blockref tree deeper than %d "
					 "levels at key 0x%llx (loop?)",
					 HAMMER2_CHAIN_DEPTH_MAX,
					 (unsigned long long)bref->key);
		return NULL;
	}
	pthread_mutex_lock(&parent->clock);
	i = children_find(parent, bref->key);
	if (i < parent->nchildren && parent->children[i]->bref.key == bref->key &&
	    parent->children[i]->bref.type == bref->type) {
		chain = parent->children[i];
		KKASSERT(chain->parent == parent);
		hammer2_chain_ref(chain);
		pthread_mutex_unlock(&parent->clock);
		return chain;
	}
	chain = hammer2_chain_alloc(parent->hmp, bref);
	if (chain == NULL || children_insert(parent, chain)) {
		pthread_mutex_unlock(&parent->clock);
		if (chain)
			chain_free(chain);
		*errorp = hammer2_seterr(ENOMEM, "out of memory");
		return NULL;
	}
	hammer2_chain_ref(parent);
	chain->parent = parent;
	chain->depth = parent->depth + 1;
	pthread_mutex_unlock(&parent->clock);
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
		chain = hammer2_chain_get(parent, &base[i], errorp);
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

/* ------------------------------------------------------------ write side */

static int
is_freemap(int type)
{
	return type == HAMMER2_BREF_TYPE_FREEMAP ||
	       type == HAMMER2_BREF_TYPE_FREEMAP_NODE ||
	       type == HAMMER2_BREF_TYPE_FREEMAP_LEAF;
}

/* Slot of the element with this key (and type), or -1. */
static int
base_slot(hammer2_blockref_t *base, int count, hammer2_key_t key, int type)
{
	for (int i = 0; i < count; ++i)
		if (base[i].type == type && base[i].key == key)
			return i;
	return -1;
}

/*
 * Insert into a (modified) blockref array, keeping the non-empty entries
 * sorted: shift toward the nearest hole.  ENOSPC when the array is full.
 */
static int
base_insert(hammer2_chain_t *parent, const hammer2_blockref_t *bref)
{
	hammer2_blockref_t *base;
	int count, pos, e;

	KKASSERT(parent->flags & HAMMER2_CHAIN_MODIFIED);
	base = hammer2_chain_base(parent, &count);
	for (pos = 0; pos < count; ++pos)
		if (base[pos].type != HAMMER2_BREF_TYPE_EMPTY &&
		    base[pos].key > bref->key)
			break;
	for (e = pos; e < count && base[e].type != HAMMER2_BREF_TYPE_EMPTY; ++e)
		;
	if (e < count) {
		memmove(&base[pos + 1], &base[pos], (size_t)(e - pos) * sizeof(*base));
		base[pos] = *bref;
		return 0;
	}
	for (e = pos - 1; e >= 0 && base[e].type != HAMMER2_BREF_TYPE_EMPTY; --e)
		;
	if (e < 0)
		return ENOSPC;
	memmove(&base[e], &base[e + 1], (size_t)(pos - 1 - e) * sizeof(*base));
	base[pos - 1] = *bref;
	return 0;
}

/* Replace the parent's copy of a child's blockref (matched by key/type). */
int
hammer2_chain_base_update(hammer2_chain_t *parent, const hammer2_blockref_t *bref)
{
	hammer2_blockref_t *base;
	int count, i;

	KKASSERT(parent->flags & HAMMER2_CHAIN_MODIFIED);
	base = hammer2_chain_base(parent, &count);
	i = base_slot(base, count, bref->key, bref->type);
	if (i < 0)
		return hammer2_seterr(EINVAL, "parent has no blockref for key "
				      "0x%llx", (unsigned long long)bref->key);
	base[i] = *bref;
	return 0;
}

/*
 * What the chain's flush will allocate, counted in the device's
 * dirty_bytes while it is modified: the space a commit needs is known
 * before it starts.  Freemap blocks live in reserved areas and count
 * nothing; a data block counts its logical size (compression only
 * shrinks it).
 */
static void
dirty_account(hammer2_chain_t *chain)
{
	uint32_t bytes = 0;

	if (chain->bytes && !is_freemap(chain->bref.type))
		bytes = 1U << hammer2_alloc_radix(chain->bytes);
	__atomic_add_fetch(&chain->hmp->dirty_bytes,
			   (uint64_t)bytes - chain->dirty_bytes, __ATOMIC_RELAXED);
	chain->dirty_bytes = bytes;
}

/* The chain's data is a private, loaded copy awaiting the next flush. */
static void
chain_set_modified(hammer2_chain_t *chain)
{
	chain->flags |= HAMMER2_CHAIN_MODIFIED | HAMMER2_CHAIN_OWNED |
			HAMMER2_CHAIN_LOADED;
	dirty_account(chain);
	hammer2_chain_ref(chain);	/* held until flushed or deleted */
}

/* Flushed or thrown away: the modified reference and count go. */
void
hammer2_chain_clear_modified(hammer2_chain_t *chain)
{
	KKASSERT(chain->flags & HAMMER2_CHAIN_MODIFIED);
	KKASSERT(chain->hmp->dirty_bytes >= chain->dirty_bytes);
	chain->flags &= ~HAMMER2_CHAIN_MODIFIED;
	__atomic_sub_fetch(&chain->hmp->dirty_bytes, chain->dirty_bytes,
			   __ATOMIC_RELAXED);
	chain->dirty_bytes = 0;
	if (!(chain->flags & HAMMER2_CHAIN_EMBEDDED))
		hammer2_chain_drop(chain);
}

/*
 * Copy-on-write: give the chain a private copy of its data, to be written
 * to a newly allocated block at the next flush, and do the same for every
 * parent up to the volume root (each needs a new blockref).  DATA blocks
 * are held decompressed while modified.
 */
int
hammer2_chain_modify(hammer2_chain_t *chain, hammer2_tid_t mtid)
{
	hammer2_chain_t *parent = chain->parent;
	uint8_t *buf;
	size_t bytes;
	int error;

	/* every change starts here, so this is where read-only is enforced */
	if (chain->hmp->readonly)
		return hammer2_seterr(EROFS, "%s is open read-only",
				      chain->hmp->path);
	if (chain->flags & HAMMER2_CHAIN_DELETED)
		return hammer2_seterr(EINVAL, "modifying a deleted chain");
	/* the exclusive transaction stands for the kernel's chain locks */
	KKASSERT(hammer2_trans_writing(chain->hmp));
	if (chain->flags & HAMMER2_CHAIN_MODIFIED) {
		/* a modified chain's parents are (their blockrefs change) */
		KKASSERT(parent == NULL || (parent->flags & HAMMER2_CHAIN_MODIFIED));
		chain->bref.modify_tid = mtid;
		/* shared data is never written: this one is about to be */
		return hammer2_chain_data_private(chain);
	}
	if (parent && (error = hammer2_chain_modify(parent, mtid)) != 0)
		return error;
	if (chain->flags & HAMMER2_CHAIN_EMBEDDED) {
		chain->flags |= HAMMER2_CHAIN_MODIFIED;
		return 0;
	}
	error = hammer2_chain_load_data(chain);
	if (error)
		return error;
	bytes = chain->bytes;
	if (chain->bref.type == HAMMER2_BREF_TYPE_DATA && chain->data &&
	    HAMMER2_DEC_COMP(chain->bref.methods) != HAMMER2_COMP_NONE) {
		/* decode into a full logical block, keep what it decoded to */
		buf = calloc(1, HAMMER2_PBUFSIZE);
		if (buf == NULL)
			return hammer2_seterr(ENOMEM, "out of memory");
		error = hammer2_decompress(HAMMER2_DEC_COMP(chain->bref.methods),
					   chain->data, chain->bytes, buf,
					   HAMMER2_PBUFSIZE, &bytes);
		if (error) {
			free(buf);
			return error;
		}
		chain->bref.methods &= ~HAMMER2_ENC_COMP(15);
		if (bytes < HAMMER2_ALLOC_MIN)
			bytes = HAMMER2_ALLOC_MIN;
	} else {
		buf = calloc(1, bytes ? bytes : 1);
		if (buf == NULL)
			return hammer2_seterr(ENOMEM, "out of memory");
		if (chain->data)
			memcpy(buf, chain->data, bytes);
	}
	hammer2_io_putblk(&chain->dio);
	if (chain->flags & HAMMER2_CHAIN_OWNED)
		hammer2_chain_data_free(chain);
	chain->data = (hammer2_media_data_t *)buf;
	chain->bytes = (uint32_t)bytes;
	chain->bref.modify_tid = mtid;
	chain_set_modified(chain);
	return 0;
}

/*
 * New blocks check like their parent (freemap blocks with the freemap
 * CRC); callers override it with hammer2_cluster_setmethod_check().
 */
static uint8_t
chain_default_methods(hammer2_chain_t *parent, int type)
{
	int check = HAMMER2_DEC_CHECK(parent->bref.methods);

	if (is_freemap(type))
		check = HAMMER2_CHECK_FREEMAP;
	else if (parent->bref.type == HAMMER2_BREF_TYPE_INODE && parent->data)
		check = HAMMER2_DEC_ALGO(parent->data->ipdata.meta.check_algo);
	return (uint8_t)HAMMER2_ENC_CHECK(check);
}

/* The chain for a just-inserted element, modified, with zeroed data. */
static hammer2_chain_t *
chain_attach_new(hammer2_chain_t *parent, const hammer2_blockref_t *bref,
		 size_t bytes, int *errorp)
{
	hammer2_chain_t *chain;

	chain = hammer2_chain_get(parent, bref, errorp);
	if (chain == NULL)
		return NULL;
	chain->data = calloc(1, bytes ? bytes : 1);
	if (chain->data == NULL) {
		*errorp = hammer2_seterr(ENOMEM, "out of memory");
		hammer2_chain_drop(chain);
		return NULL;
	}
	chain->bytes = (uint32_t)bytes;
	chain_set_modified(chain);
	return chain;
}

/* Move parent's cached child under a new parent. */
static void
chain_reparent(hammer2_chain_t *child, hammer2_chain_t *nparent)
{
	hammer2_chain_t *oparent = child->parent;

	children_remove(oparent, child);
	children_insert(nparent, child);
	child->parent = nparent;
	child->depth = nparent->depth + 1;
	hammer2_chain_ref(nparent);
	__atomic_sub_fetch(&oparent->refs, 1, __ATOMIC_ACQ_REL);
}

/* Entries of base lying inside the aligned range [ikey, ikey + 2^kb). */
static int
count_within(hammer2_blockref_t *base, int count, hammer2_key_t ikey, int kb)
{
	hammer2_key_t iend = kb >= 64 ? HAMMER2_KEY_MAX : ikey + ((1ULL << kb) - 1);
	int n = 0;

	for (int i = 0; i < count; ++i)
		if (base[i].type != HAMMER2_BREF_TYPE_EMPTY && base[i].key >= ikey &&
		    hammer2_bref_key_end(&base[i]) <= iend)
			++n;
	return n;
}

/*
 * Parent's array is full and the new key is not under any of its
 * indirect blocks: push entries down into a new indirect block (4 KiB
 * for directory entries, 16 KiB elsewhere, as the kernel sizes them).  Its span is what a full
 * block of children of the new element's size covers (a 16 KiB indirect
 * over 64 KiB data blocks spans 8 MiB), widened until at
 * least two entries move, so a slot frees up; it stays narrower than the
 * parent's own span.  Failing that, the fuller half of the parent's span
 * moves.  Freemap arrays use the fixed freemap levels instead: a node
 * spans 2^8 times its children.
 */
static hammer2_chain_t *
chain_create_indirect(hammer2_chain_t *parent, hammer2_key_t key,
		      int child_keybits, hammer2_tid_t mtid, int *errorp)
{
	hammer2_blockref_t *base, *nbase;
	hammer2_blockref_t ibref;
	hammer2_key_t ikey, pbase = 0;
	hammer2_chain_t *ind;
	int count, keybits, type, ncount, n = 0;
	int span = 64;
	size_t bytes;

	base = hammer2_chain_base(parent, &count);
	if (is_indirect(parent->bref.type)) {
		span = parent->bref.keybits;
		pbase = parent->bref.key;
	}
	if (is_freemap(parent->bref.type)) {
		keybits = child_keybits + 8;
		ikey = keybits >= 64 ? 0 : key & ~((1ULL << keybits) - 1);
		type = HAMMER2_BREF_TYPE_FREEMAP_NODE;
		bytes = HAMMER2_FREEMAP_LEVELN_PSIZE;
	} else {
		/* directory entries get 4 KiB blocks, the rest 16 KiB */
		int fanout = 7;

		bytes = HAMMER2_LBUFSIZE;
		if (parent->bref.type == HAMMER2_BREF_TYPE_INODE &&
		    (key & HAMMER2_DIRHASH_VISIBLE)) {
			bytes = HAMMER2_LBUFSIZE / 4;
			fanout = 5;
		}
		for (keybits = child_keybits + fanout; keybits < span; ++keybits) {
			ikey = key & ~((1ULL << keybits) - 1);
			if (count_within(base, count, ikey, keybits) >= 2)
				break;
		}
		if (keybits >= span) {
			hammer2_key_t half = 1ULL << (span - 1);

			keybits = span - 1;
			ikey = pbase;
			if (count_within(base, count, pbase + half, keybits) >
			    count_within(base, count, pbase, keybits))
				ikey = pbase + half;
		}
		type = HAMMER2_BREF_TYPE_INDIRECT;
	}
	/* take the covered entries out before inserting the indirect */
	nbase = malloc(bytes);
	if (nbase == NULL) {
		*errorp = hammer2_seterr(ENOMEM, "out of memory");
		return NULL;
	}
	memset(nbase, 0, bytes);
	ncount = (int)(bytes / sizeof(*nbase));
	for (int i = 0; i < count; ++i) {
		hammer2_blockref_t tmp;

		if (base[i].type == HAMMER2_BREF_TYPE_EMPTY || base[i].key < ikey ||
		    hammer2_bref_key_end(&base[i]) >
		    ikey + ((keybits >= 64) ? ~0ULL : (1ULL << keybits) - 1))
			continue;
		tmp = base[i];
		memset(&base[i], 0, sizeof(base[i]));
		if (n < ncount)
			nbase[n++] = tmp;
	}
	/*
	 * Build the indirect chain by hand: the block it replaces in the
	 * array may have the same key and type, so hammer2_chain_get would
	 * find that one among the live children.
	 */
	memset(&ibref, 0, sizeof(ibref));
	ibref.type = (uint8_t)type;
	ibref.key = ikey;
	ibref.keybits = (uint8_t)keybits;
	ibref.modify_tid = mtid;
	ibref.methods = chain_default_methods(parent, type);
	ind = hammer2_chain_alloc(parent->hmp, &ibref);
	if (ind == NULL || (*errorp = base_insert(parent, &ibref)) != 0) {
		if (ind)
			chain_free(ind);
		else
			*errorp = hammer2_seterr(ENOMEM, "out of memory");
		free(nbase);
		return NULL;
	}
	ind->data = (hammer2_media_data_t *)nbase;
	ind->bytes = (uint32_t)bytes;
	chain_set_modified(ind);
	/* cached children in the moved range now live under the indirect */
	pthread_mutex_lock(&parent->clock);
	for (int i = 0; i < parent->nchildren;) {
		hammer2_chain_t *c = parent->children[i];

		if (c->bref.key >= ikey &&
		    hammer2_bref_key_end(&c->bref) <= hammer2_bref_key_end(&ibref))
			chain_reparent(c, ind);
		else
			++i;
	}
	if (children_insert(parent, ind)) {
		pthread_mutex_unlock(&parent->clock);
		*errorp = hammer2_seterr(ENOMEM, "out of memory");
		return NULL;
	}
	hammer2_chain_ref(parent);
	ind->parent = parent;
	ind->depth = parent->depth + 1;
	pthread_mutex_unlock(&parent->clock);
	return ind;
}

/*
 * Descend from *parentp (locked, referenced; the top must not be an
 * indirect block) to the block where an element with bref's key range
 * belongs, splitting full arrays into indirect blocks, and insert bref
 * there.  *parentp ends at that block.  EEXIST if the key is taken.
 */
static int
chain_place(hammer2_chain_t **parentp, const hammer2_blockref_t *bref,
	    hammer2_tid_t mtid)
{
	hammer2_key_t key_end = hammer2_bref_key_end(bref);
	hammer2_chain_t *parent, *next;
	hammer2_blockref_t *base;
	int error, count, i;

	for (;;) {
		parent = *parentp;
		error = hammer2_chain_modify(parent, mtid);
		if (error)
			return error;
		base = hammer2_chain_base(parent, &count);
		if (base == NULL)
			return hammer2_seterr(EINVAL, "%s block cannot hold "
					      "blockrefs",
					      hammer2_bref_type_name(parent->bref.type));
		i = base_find(parent, base, count, bref->key);
		if (i < count && base[i].key <= key_end) {
			if (!is_indirect(base[i].type) ||
			    base[i].key > bref->key ||
			    hammer2_bref_key_end(&base[i]) < key_end)
				return hammer2_seterr(EEXIST, "key 0x%llx already "
						      "in use",
						      (unsigned long long)bref->key);
			next = hammer2_chain_get(parent, &base[i], &error);
			if (next == NULL)
				return error;
			hammer2_chain_lock(next, 0);
			parent_replace(parentp, next);
			continue;
		}
		error = base_insert(parent, bref);
		if (error != ENOSPC)
			return error;
		next = chain_create_indirect(parent, bref->key, bref->keybits,
					     mtid, &error);
		if (next == NULL)
			return error;
		hammer2_chain_drop(next);	/* its array slot keeps it */
	}
}

/*
 * Create a new element (key, keybits, type) with `bytes` of zeroed data
 * below *parentp; returned referenced and locked in *chainp, with
 * *parentp moved to the block that holds it.
 */
int
hammer2_chain_create(hammer2_chain_t **parentp, hammer2_chain_t **chainp,
		     hammer2_key_t key, int keybits, int type, size_t bytes,
		     hammer2_tid_t mtid)
{
	hammer2_blockref_t bref;
	int error;

	memset(&bref, 0, sizeof(bref));
	bref.type = (uint8_t)type;
	bref.key = key;
	bref.keybits = (uint8_t)keybits;
	bref.modify_tid = mtid;
	bref.methods = chain_default_methods(*parentp, type);
	*chainp = NULL;
	error = chain_place(parentp, &bref, mtid);
	if (error)
		return error;
	*chainp = chain_attach_new(*parentp, &bref, bytes, &error);
	if (*chainp == NULL)
		return error;
	hammer2_chain_lock(*chainp, 0);
	return 0;
}

/* Forget pending modifications below (and of) a chain being discarded. */
void
hammer2_chain_release_subtree(hammer2_chain_t *chain)
{
	hammer2_chain_t **kids;
	int n;

	pthread_mutex_lock(&chain->clock);
	n = chain->nchildren;
	kids = n ? malloc((size_t)n * sizeof(*kids)) : NULL;
	for (int i = 0; kids && i < n; ++i) {
		kids[i] = chain->children[i];
		hammer2_chain_ref(kids[i]);
	}
	pthread_mutex_unlock(&chain->clock);
	for (int i = 0; kids && i < n; ++i) {
		hammer2_chain_release_subtree(kids[i]);
		hammer2_chain_drop(kids[i]);
	}
	free(kids);
	if ((chain->flags & HAMMER2_CHAIN_MODIFIED) &&
	    !(chain->flags & HAMMER2_CHAIN_EMBEDDED))
		hammer2_chain_clear_modified(chain);
}

/* Take chain out of its (modified) parent, with everything below it. */
static void
chain_unlink(hammer2_chain_t *parent, hammer2_chain_t *chain)
{
	hammer2_blockref_t *base;
	int count, i;

	KKASSERT(parent->flags & HAMMER2_CHAIN_MODIFIED);
	base = hammer2_chain_base(parent, &count);
	i = base_slot(base, count, chain->bref.key, chain->bref.type);
	if (i >= 0)
		memset(&base[i], 0, sizeof(base[i]));
	hammer2_chain_release_subtree(chain);
	pthread_mutex_lock(&parent->clock);
	children_remove(parent, chain);
	chain->flags |= HAMMER2_CHAIN_DELETED;
	pthread_mutex_unlock(&parent->clock);
}

/*
 * Remove a chain from its parent: its blockref goes away at the next
 * flush and whatever it referenced becomes unreachable (freed later by a
 * bulkfree, as snapshots may share it).  Indirect blocks left empty are
 * collapsed by the flush.
 */
int
hammer2_chain_delete(hammer2_chain_t *chain, hammer2_tid_t mtid)
{
	hammer2_chain_t *parent = chain->parent;
	int error;

	if (parent == NULL || (chain->flags & HAMMER2_CHAIN_DELETED))
		return hammer2_seterr(EINVAL, "chain cannot be deleted");
	error = hammer2_chain_modify(parent, mtid);
	if (error)
		return error;
	chain_unlink(parent, chain);
	return 0;
}

/*
 * The flush dropping a block that holds nothing any more (an empty
 * indirect block, an all-zero data block): the layout changes, not the
 * content, so unlike a delete it stamps no modify_tid up the tree (nodes
 * laid out differently must still agree by it).  The parent, being
 * flushed, is modified already.
 */
void
hammer2_chain_drop_empty(hammer2_chain_t *chain)
{
	chain_unlink(chain->parent, chain);
}

/*
 * Move a chain (with everything below it, flushed or not) to a new key
 * under *parentp, which may be another block; *parentp ends at the block
 * now holding it.
 */
int
hammer2_chain_rename(hammer2_chain_t **parentp, hammer2_chain_t *chain,
		     hammer2_key_t key, hammer2_tid_t mtid)
{
	hammer2_chain_t *oparent;
	hammer2_blockref_t *base;
	hammer2_blockref_t bref;
	int error, count, i;

	if (chain->parent == NULL || (chain->flags & HAMMER2_CHAIN_DELETED))
		return hammer2_seterr(EINVAL, "chain cannot be renamed");
	error = hammer2_chain_modify(chain, mtid);
	if (error)
		return error;
	bref = chain->bref;
	bref.key = key;
	error = chain_place(parentp, &bref, mtid);
	if (error)
		return error;
	oparent = chain->parent;	/* a split may have moved it */
	base = hammer2_chain_base(oparent, &count);
	i = base_slot(base, count, chain->bref.key, chain->bref.type);
	if (i >= 0)
		memset(&base[i], 0, sizeof(base[i]));
	pthread_mutex_lock(&oparent->clock);
	children_remove(oparent, chain);
	pthread_mutex_unlock(&oparent->clock);
	pthread_mutex_lock(&(*parentp)->clock);
	chain->bref.key = key;
	error = children_insert(*parentp, chain);
	chain->parent = *parentp;
	chain->depth = (*parentp)->depth + 1;
	hammer2_chain_ref(*parentp);
	pthread_mutex_unlock(&(*parentp)->clock);
	hammer2_chain_drop(oparent);
	return error ? hammer2_seterr(error, "out of memory") : 0;
}

/* Change the size of a modified chain's data, zero-filling growth. */
int
hammer2_chain_resize(hammer2_chain_t *chain, size_t bytes, hammer2_tid_t mtid)
{
	uint8_t *buf;
	int error;

	error = hammer2_chain_modify(chain, mtid);
	if (error)
		return error;
	if (bytes == chain->bytes)
		return 0;
	KKASSERT(chain->dbuf == NULL);		/* hammer2_chain_modify's */
	buf = realloc(chain->data, bytes);
	if (buf == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	if (bytes > chain->bytes)
		memset(buf + chain->bytes, 0, bytes - chain->bytes);
	chain->data = (hammer2_media_data_t *)buf;
	chain->bytes = (uint32_t)bytes;
	dirty_account(chain);
	return 0;
}
