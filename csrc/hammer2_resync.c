/*
 * Resync: bring one node (dst) of a cluster to the state the live nodes
 * (the sources) last committed.  The trees are walked together from the
 * volume root, element by element (inodes, directory entries, data
 * blocks; indirect blocks are transparent).  An element whose source copy
 * has not changed since dst's last transaction (mirror_tid no newer, same
 * modify_tid) is skipped with its whole subtree, so a node that missed a
 * little is repaired by copying a little.  Elements are copied logically,
 * never as blockref tables, since block offsets are each node's own; a
 * data block keeps its sources' encoding, and goes to dst's device while
 * the walk reads on (written ahead of the commit, a window at a time).
 * The node-local PFS "LOCAL" is
 * left alone.  dst is committed at the sources' transaction id, which
 * makes it agree with them again.
 *
 * Healing: what dst cannot read (an element or indirect block failing its
 * check or its read) is replaced from the first source that can serve it,
 * element by element (hammer2_resync_src.c), and counted as repaired; only
 * what no node can read is reported, as lost.  A scrub (HAMMER2_RESYNC_SCRUB)
 * also reads back every element both hold in the same version.
 *
 * Callers hold the sources' transaction locks (shared or exclusive) and
 * dst's exclusively; the sources have nothing pending (flushed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_resync.h"

#define LOCAL_LABEL	"LOCAL"

static int sync_children(struct resync *rs, struct srcs *s,
			 hammer2_chain_t *d, hammer2_key_t beg, hammer2_key_t end);

static void
chain_put(hammer2_chain_t *c)
{
	if (c) {
		hammer2_chain_unlock(c);
		hammer2_chain_drop(c);
	}
}

/* The super-root inode: the elements under it are PFS roots. */
static int
is_sroot(const hammer2_chain_t *c)
{
	return c->bref.type == HAMMER2_BREF_TYPE_INODE &&
	       c->parent == c->hmp->vchain;
}

static int
is_local_pfs(const hammer2_chain_t *parent, const hammer2_chain_t *c)
{
	const hammer2_inode_meta_t *m;

	/* only an inode under the super-root has data worth looking at */
	if (!is_sroot(parent) || c->data == NULL)
		return 0;
	m = &c->data->ipdata.meta;
	return (m->op_flags & HAMMER2_OPFLAG_PFSROOT) &&
	       m->name_len == strlen(LOCAL_LABEL) &&
	       memcmp(c->data->ipdata.filename, LOCAL_LABEL, m->name_len) == 0;
}

static int
has_children(const hammer2_chain_t *c)
{
	return c->bref.type == HAMMER2_BREF_TYPE_INODE &&
	       !(c->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA);
}

/* A failure that says nothing about the media: the walk stops. */
static int
fatal_error(int error)
{
	return error == ENOTCONN || error == ENOMEM;
}

/*
 * Nothing can serve this element of dst's: its media offset, the inode
 * holding it and the PFS are kept for the report.
 */
static void
report_lost(struct resync *rs, const hammer2_chain_t *parent,
	    const struct elem *el, hammer2_off_t off)
{
	hammer2_resync_stats_t *st = rs->stats;
	hammer2_resync_lost_t *l;

	st->missing += off == 0;
	if (st->unreadable++ >= HAMMER2_RESYNC_LOST_MAX)
		return;
	l = &st->lost[st->unreadable - 1];
	memset(l, 0, sizeof(*l));
	snprintf(l->pfs, sizeof(l->pfs), "%s", rs->label);
	if (parent->bref.type == HAMMER2_BREF_TYPE_INODE && parent->data)
		l->inum = parent->data->ipdata.meta.inum;
	l->key = el->key;
	l->type = el->type;
	l->off = off;
}

/*
 * A source version committed by the pass's start is the only one of its
 * modify_tid; one modified since (a pass that stopped lets writes in) may
 * change again under the same tid.  Its copy on dst is stamped 0, so the
 * pass that follows takes it again rather than judging it the same.
 */
static int
settled(const struct resync *rs, hammer2_tid_t modify_tid)
{
	return modify_tid <= rs->mtid;
}

/* For a sync thread's status, read while it runs. */
static void
progress(struct resync *rs, uint64_t bytes)
{
	hammer2_sync_status_t *p = rs->stats->progress;

	if (p) {
		__atomic_add_fetch(&p->done_elems, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&p->done_bytes, bytes, __ATOMIC_RELAXED);
	}
}

/*
 * A source data block's logical content: decoded into *bufp (malloc'd),
 * or (*bufp NULL) s->data as it is.
 */
static int
logical_data(hammer2_chain_t *s, uint8_t **bufp, size_t *bytesp)
{
	int comp = HAMMER2_DEC_COMP(s->bref.methods);
	size_t bytes;
	uint8_t *buf;
	int error;

	*bufp = NULL;
	*bytesp = s->data ? s->bytes : 0;
	if (s->data == NULL || s->bytes == 0 || comp == HAMMER2_COMP_NONE ||
	    (s->flags & HAMMER2_CHAIN_MODIFIED))
		return 0;		/* s->data is it */
	if ((buf = malloc(HAMMER2_PBUFSIZE)) == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	error = hammer2_decompress(comp, s->data, s->bytes, buf,
				   HAMMER2_PBUFSIZE, &bytes);
	if (error) {
		free(buf);
		return error;
	}
	*bufp = buf;
	*bytesp = bytes < HAMMER2_ALLOC_MIN ? HAMMER2_ALLOC_MIN : bytes;
	return 0;
}

/*
 * The data blocks copied so far go to dst's device now (hammer2_flush_ahead),
 * while the walk reads on, instead of all at the commit (write 0: a failed
 * walk, they are only let go).
 */
static int
ahead_flush(struct resync *rs, int write)
{
	int error = 0;

	if (write && rs->nahead)
		error = hammer2_flush_ahead(rs->dst, rs->ahead, rs->nahead);
	for (int i = 0; i < rs->nahead; ++i)
		hammer2_chain_drop(rs->ahead[i]);
	rs->nahead = 0;
	return error;
}

/* A copied data block d (locked, referenced): written ahead with others. */
static int
ahead_add(struct resync *rs, hammer2_chain_t *d)
{
	hammer2_chain_unlock(d);
	rs->ahead[rs->nahead++] = d;
	return rs->nahead == RESYNC_AHEAD ? ahead_flush(rs, 1) : 0;
}

/*
 * Make dst's element (d, NULL: create under dparent) a copy of sc, the
 * serving source chain of child; then its children.  d is locked; sc's
 * data is loaded.  d is released.
 */
static int
copy_elem(struct resync *rs, struct srcs *child, hammer2_chain_t *sc,
	  hammer2_chain_t *dparent, hammer2_chain_t *d)
{
	hammer2_chain_t *p;
	uint8_t *buf = NULL;
	size_t bytes = sc->bytes, n = bytes;
	hammer2_uuid_t fsid;
	int keep_fsid = 0;
	int error = 0;

	if (sc->bref.type == HAMMER2_BREF_TYPE_DATA) {
		if ((error = logical_data(sc, &buf, &bytes)) != 0) {
			chain_put(d);
			return error;
		}
		n = bytes;
	} else if (sc->bref.type == HAMMER2_BREF_TYPE_INODE) {
		n = has_children(sc) ? offsetof(hammer2_inode_data_t, u) : bytes;
		/* an inode changing between embedded data and a blockset
		 * is replaced: its old blocks must not survive */
		if (d && !!has_children(d) != !!has_children(sc)) {
			if ((error = hammer2_chain_delete(d, rs->mtid)) != 0) {
				chain_put(d);
				return error;
			}
			chain_put(d);
			d = NULL;
			++rs->stats->deleted;
		}
		if (d && (sc->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_PFSROOT)) {
			fsid = d->data->ipdata.meta.pfs_fsid;	/* each node's own */
			keep_fsid = 1;
		}
	}
	if (d == NULL) {
		hammer2_chain_ref(dparent);
		hammer2_chain_lock(dparent, 0);
		p = dparent;
		error = hammer2_chain_create(&p, &d, sc->bref.key, sc->bref.keybits,
					     sc->bref.type, bytes, rs->mtid);
		chain_put(p);
		if (error == 0 && sc->bref.type == HAMMER2_BREF_TYPE_INODE &&
		    (sc->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_PFSROOT)) {
			error = hammer2_uuid_random(&fsid);
			keep_fsid = 1;
		}
	} else {
		error = hammer2_chain_resize(d, bytes, rs->mtid);
	}
	if (error == 0) {
		if (n)
			memcpy(d->data, sc->data && !buf ? (const void *)sc->data : buf, n);
		if (keep_fsid) {
			d->data->ipdata.meta.pfs_fsid = fsid;
			d->bref.flags |= sc->bref.flags & HAMMER2_BREF_FLAG_PFSROOT;
		}
		d->bref.methods = sc->bref.methods;
		d->bref.embed = sc->bref.embed;
		if (sc->bref.type == HAMMER2_BREF_TYPE_DIRENT)
			d->bref.check = sc->bref.check;		/* short name */
		if (sc->bref.type == HAMMER2_BREF_TYPE_DATA) {
			d->bref.methods &= (uint8_t)~HAMMER2_ENC_COMP(15);
			/* written as the source holds it: not encoded again */
			error = hammer2_chain_encoded_preset(d, sc);
		}
		++rs->stats->copied;
		if (sc->bref.type == HAMMER2_BREF_TYPE_DATA)
			rs->stats->bytes += bytes;
		progress(rs, sc->bref.type == HAMMER2_BREF_TYPE_DATA ? bytes : 0);
		if (has_children(sc))
			error = sync_children(rs, child, d, 0, HAMMER2_KEY_MAX);
		/* after the children, whose creation stamps their parents */
		d->bref.modify_tid = settled(rs, sc->bref.modify_tid) ?
				     sc->bref.modify_tid : 0;
	}
	free(buf);
	/* in a pass, dst is a stale node (a heal works on a live one) */
	if (error == 0 && rs->walk && d->bref.type == HAMMER2_BREF_TYPE_DATA)
		return ahead_add(rs, d);
	chain_put(d);
	return error;
}

/*
 * dst's indirect blocks under d that do not load: replaced (deleted here,
 * their elements then copied as missing) where a source knows that key
 * range; else kept and reported.
 */
static int
heal_holes(struct resync *rs, struct srcs_level *lv, hammer2_chain_t *d,
	   struct elems *de)
{
	int error = 0;

	for (size_t i = 0; i < de->nbad && error == 0; ++i) {
		hammer2_chain_t *b = de->bad[i];
		struct elem el = { b->bref.key, b->bref.type, b->bref.keybits,
				   b->bref.modify_tid, b->bref.mirror_tid, 0 };

		if (srcs_unknown(lv, b->bref.key, hammer2_bref_key_end(&b->bref))) {
			report_lost(rs, d, &el, b->bref.data_off & HAMMER2_OFF_MASK);
			continue;
		}
		error = hammer2_chain_delete(b, rs->mtid);
		++rs->stats->repaired;
	}
	return error;
}

/*
 * dst's node-local PFS root does not read: no other node holds what it
 * held, so it is made anew, empty, as newfs makes it (like the source's,
 * sc).  dc is released.
 */
static int
local_recreate(struct resync *rs, hammer2_chain_t *d, hammer2_chain_t *dc,
	       const hammer2_chain_t *sc)
{
	const hammer2_inode_meta_t *m = &sc->data->ipdata.meta;
	hammer2_chain_t *p, *nc = NULL;
	int error;

	error = hammer2_chain_delete(dc, rs->mtid);
	chain_put(dc);
	if (error)
		return error;
	hammer2_chain_ref(d);
	hammer2_chain_lock(d, 0);
	p = d;
	error = hammer2_chain_create(&p, &nc, sc->bref.key, sc->bref.keybits,
				     HAMMER2_BREF_TYPE_INODE, HAMMER2_INODE_BYTES,
				     rs->mtid);
	chain_put(p);
	if (error == 0)
		error = hammer2_pfs_inode_init(&nc->data->ipdata, LOCAL_LABEL,
					       m->pfs_type, m->pfs_subtype,
					       m->comp_algo, m->check_algo, 0,
					       NULL, hammer2_time_now());
	if (error == 0) {
		nc->bref.methods = sc->bref.methods;
		nc->bref.flags |= HAMMER2_BREF_FLAG_PFSROOT;
		++rs->stats->repaired;
	}
	chain_put(nc);
	return error;
}

/*
 * An element both hold: dst's copy is kept when it is the same version
 * and reads back (looked at only when scrubbing, or when its subtree may
 * have changed), else replaced by the first source copy that reads.
 */
static int
sync_both(struct resync *rs, struct srcs *child, hammer2_chain_t *d,
	  const struct elem *del)
{
	const struct elem *el = &child->el;
	hammer2_chain_t *dc, *sc;
	int same = el->modify_tid == del->modify_tid &&
		   settled(rs, el->modify_tid) &&
		   !(rs->flags & HAMMER2_RESYNC_FULL);
	int bad = 0, error;

	dc = elem_lookup(d, del, 0, HAMMER2_LOOKUP_NODATA, &error);
	if (dc == NULL)
		return error ? error : hammer2_seterr(EIO, "%s: element 0x%llx "
						      "vanished", rs->dst->path,
						      (unsigned long long)el->key);
	if ((error = hammer2_chain_load_data(dc)) != 0) {
		if (fatal_error(error)) {
			chain_put(dc);
			return error;
		}
		bad = 1;
	}
	if (!bad && is_local_pfs(d, dc)) {
		chain_put(dc);
		return 0;
	}
	if (!bad && same) {
		++rs->stats->skipped;
		if (has_children(dc)) {
			error = sync_children(rs, child, dc, 0, HAMMER2_KEY_MAX);
			if (dc->flags & HAMMER2_CHAIN_MODIFIED)
				dc->bref.modify_tid = el->modify_tid;
		}
		chain_put(dc);
		return error;
	}
	if ((sc = srcs_get(rs, child, &error)) == NULL) {
		if (error == 0)
			report_lost(rs, d, el, bad ? dc->bref.data_off &
					      HAMMER2_OFF_MASK : 0);
		chain_put(dc);
		return error;
	}
	if (is_local_pfs(d, sc)) {
		if (bad)
			return local_recreate(rs, d, dc, sc);
		chain_put(dc);
		return 0;
	}
	if (bad) {
		/* unreadable here: a source's copy replaces it */
		++rs->stats->repaired;
		error = hammer2_chain_delete(dc, rs->mtid);
		chain_put(dc);
		if (error)
			return error;
		dc = NULL;
	}
	return copy_elem(rs, child, sc, d, dc);
}

/* An element dst lacks: copied from the first source that can serve it. */
static int
sync_missing(struct resync *rs, struct srcs *child, hammer2_chain_t *d)
{
	hammer2_chain_t *sc;
	int error;

	if ((sc = srcs_get(rs, child, &error)) == NULL) {
		if (error == 0)
			report_lost(rs, d, &child->el, 0);
		return error;
	}
	return is_local_pfs(d, sc) ? 0 : copy_elem(rs, child, sc, d, NULL);
}

/* An element only dst holds: deleted, unless the sources cannot tell. */
static int
sync_extra(struct resync *rs, struct srcs_level *lv, hammer2_chain_t *d,
	   const struct elem *el)
{
	hammer2_chain_t *dc;
	int error = 0;

	if ((rs->flags & HAMMER2_RESYNC_KEEP) ||
	    srcs_unknown(lv, el->key, el->key))
		return 0;
	dc = elem_lookup(d, el, 0, HAMMER2_LOOKUP_NODATA, &error);
	if (dc == NULL)
		return error;
	/* a top-level element that does not read may be LOCAL: kept */
	if (hammer2_chain_load_data(dc) == 0 ? !is_local_pfs(d, dc) :
	    !is_sroot(d)) {
		error = hammer2_chain_delete(dc, rs->mtid);
		++rs->stats->deleted;
	}
	chain_put(dc);
	return error;
}

/*
 * dst's elements in [*begp, *endp] under d; the range grows to take in
 * whole the indirect blocks that do not load, as healing replaces them
 * with everything they held.
 */
static int
dst_collect(hammer2_chain_t *d, struct elems *de, hammer2_key_t *begp,
	    hammer2_key_t *endp)
{
	int error, grown;

	do {
		grown = 0;
		elems_free(de);
		error = elems_collect(d, de, 0, *begp, *endp);
		for (size_t i = 0; error == 0 && i < de->nbad; ++i) {
			const hammer2_blockref_t *b = &de->bad[i]->bref;

			if (b->key < *begp || hammer2_bref_key_end(b) > *endp) {
				if (b->key < *begp)
					*begp = b->key;
				if (hammer2_bref_key_end(b) > *endp)
					*endp = hammer2_bref_key_end(b);
				grown = 1;
			}
		}
	} while (error == 0 && grown);
	return error;
}

/* A pass in passes stopped here; the walk unwinds with it. */
#define STOPPED		EINPROGRESS

/*
 * Whether a pass stops before el, the next element at this level: then
 * the cursor says where to go on (the elements under way above, this).
 */
static int
walk_stop(struct resync *rs, int level, const struct elem *el)
{
	hammer2_resync_walk_t *w = rs->walk;

	if (w == NULL || w->stop == NULL || level >= HAMMER2_RESYNC_DEPTH ||
	    !w->stop(w->arg))
		return 0;
	w->cursor[level].key = el->key;
	w->cursor[level].type = el->type;
	w->resume = level + 1;
	w->stopped = 1;
	return 1;
}

/* el is under way at this level: levels below start afresh unless told. */
static void
walk_at(struct resync *rs, int level, const struct elem *el, int resumed)
{
	hammer2_resync_walk_t *w = rs->walk;

	if (w == NULL || level >= HAMMER2_RESYNC_DEPTH)
		return;
	w->cursor[level].key = el->key;
	w->cursor[level].type = el->type;
	if (!resumed && w->resume > level + 1)
		w->resume = level + 1;
}

/*
 * Merge the elements in [beg, end] under s (the sources) and d (dst):
 * copy what dst lacks, holds in another version or cannot read; delete
 * what the sources no longer have.  A pass going on from where it
 * stopped passes over the elements before the cursor's at this level.
 */
static int
sync_children(struct resync *rs, struct srcs *s, hammer2_chain_t *d,
	      hammer2_key_t beg, hammer2_key_t end)
{
	struct srcs_level lv;
	struct elems de = { 0 };
	char label[sizeof(rs->label)];
	int level = rs->depth++;
	int resuming = rs->walk && level < rs->walk->resume &&
		       level < HAMMER2_RESYNC_DEPTH;
	struct elem cur = { 0 };
	size_t i = 0, j = 0, ahead = 0;
	int error;

	if (resuming) {
		cur.key = rs->walk->cursor[level].key;
		cur.type = rs->walk->cursor[level].type;
	}

	memcpy(label, rs->label, sizeof(label));
	if (d->parent && is_sroot(d->parent))	/* a PFS root */
		snprintf(rs->label, sizeof(rs->label), "%.*s",
			 (int)d->data->ipdata.meta.name_len,
			 (const char *)d->data->ipdata.filename);
	memset(&lv, 0, sizeof(lv));
	error = dst_collect(d, &de, &beg, &end);
	if (error == 0)
		error = srcs_collect(rs, s, &lv, beg, end);
	if (error == 0)
		error = heal_holes(rs, &lv, d, &de);
	while (error == 0 && (i < lv.e.n || j < de.n)) {
		int cmp = i >= lv.e.n ? 1 : j >= de.n ? -1 :
			  elem_cmp(&lv.e.v[i], &de.v[j]);
		const struct elem *next = cmp > 0 ? &de.v[j] : &lv.e.v[i];
		int at_cursor = resuming && elem_cmp(next, &cur) == 0;
		struct srcs child;

		if (resuming && elem_cmp(next, &cur) < 0) {
			i += cmp <= 0;		/* done before it stopped */
			j += cmp >= 0;
			continue;
		}
		resuming = 0;
		/* the sources' next blocks load while this one is copied */
		if (i < lv.e.n && i >= ahead)
			ahead = srcs_prefetch(rs, &lv.e, i);
		/* never before the element it went on from: it must advance */
		if (!at_cursor && walk_stop(rs, level, next)) {
			error = STOPPED;
			break;
		}
		walk_at(rs, level, next, at_cursor);
		if (cmp > 0) {
			error = sync_extra(rs, &lv, d, &de.v[j++]);
			continue;
		}
		++rs->stats->visited;
		srcs_init(&child, s, &lv.e.v[i++]);
		if (cmp < 0)
			error = sync_missing(rs, &child, d);
		else if (child.el.modify_tid == de.v[j].modify_tid &&
			 child.el.mirror_tid <= rs->since &&
			 !(rs->flags & HAMMER2_RESYNC_SCRUB))
			++rs->stats->skipped;	/* unchanged since dst had it */
		else
			error = sync_both(rs, &child, d, &de.v[j]);
		j += cmp == 0;
		srcs_done(&child);
	}
	srcs_level_free(&lv);
	elems_free(&de);
	memcpy(rs->label, label, sizeof(label));
	--rs->depth;
	return error;
}

/*
 * One pass over dst (see hammer2_resync_walk_t): from the top, or on from
 * where the last stopped (w->resume).  A pass begins with the sources
 * flushed, all at one transaction, which dst is to commit.  Returns 0
 * when the pass is through, EINPROGRESS when it stopped; dst is not
 * committed (hammer2_resync_commit).
 */
int
hammer2_resync_pass(hammer2_dev_t **srcs, int nsrc, hammer2_dev_t *dst,
		    int flags, hammer2_resync_stats_t *stats,
		    hammer2_resync_walk_t *w)
{
	struct resync rs = { .dst = dst, .stats = stats, .flags = flags,
			     .walk = w };
	struct srcs top;
	int error, aerror;

	if (nsrc < 1 || nsrc > HAMMER2_MAXCLUSTER)
		return hammer2_seterr(EINVAL, "%s: resync from %d nodes",
				      dst->path, nsrc);
	for (int k = 0; k < nsrc; ++k) {
		if (srcs[k] == dst)
			return hammer2_seterr(EINVAL, "%s: resync from itself",
					      dst->path);
		rs.src[k] = srcs[k];
	}
	rs.nsrc = nsrc;
	if (w->resume == 0) {
		/* a pass begins */
		hammer2_tid_t mtid = srcs[0]->voldata->mirror_tid;

		for (int k = 0; k < nsrc; ++k) {
			if (srcs[k]->vchain->flags & HAMMER2_CHAIN_MODIFIED)
				return hammer2_seterr(EBUSY, "%s: has unflushed "
						      "changes", srcs[k]->path);
			if (srcs[k]->voldata->mirror_tid != mtid)
				return hammer2_seterr(EINVAL, "%s: at transaction "
						      "%llu, not the other sources' %llu",
						      srcs[k]->path, (unsigned long long)
						      srcs[k]->voldata->mirror_tid,
						      (unsigned long long)mtid);
		}
		if (w->passes == 0)
			w->since = (flags & HAMMER2_RESYNC_FULL) ? 0 :
				   dst->voldata->mirror_tid;
		if (w->since > mtid)
			return hammer2_seterr(EINVAL, "%s: at transaction %llu, "
					      "beyond the source's %llu; commit on "
					      "the cluster first", dst->path,
					      (unsigned long long)w->since,
					      (unsigned long long)mtid);
		w->mtid = mtid;
		w->stopped = 0;
		if (w->passes++ == 0) {
			dst->flush_error = 0;
			if (stats->progress) {
				const hammer2_blockref_t *sroot =
				    &srcs[0]->voldata->sroot_blockset.blockref[0];

				stats->progress->done_elems = 0;
				stats->progress->done_bytes = 0;
				stats->progress->total_elems =
				    sroot->embed.stats.inode_count;
				stats->progress->total_bytes =
				    sroot->embed.stats.data_count;
			}
		}
		if (w->since == mtid)
			return 0;		/* nothing changed since */
		dst->mtid = mtid;
		/* the header moves to the sources' transaction even if
		 * nothing else does */
		if ((error = hammer2_chain_modify(dst->vchain, mtid)) != 0)
			return error;
	}
	/* what dst holds already of an earlier pass, this one compares */
	if (w->passes > 1)
		rs.flags &= ~HAMMER2_RESYNC_FULL;
	rs.since = w->since;
	rs.mtid = w->mtid;
	srcs_top(&rs, &top);
	hammer2_chain_ref(dst->vchain);
	hammer2_chain_lock(dst->vchain, 0);
	error = sync_children(&rs, &top, dst->vchain, 0, HAMMER2_KEY_MAX);
	aerror = ahead_flush(&rs, error == 0 || error == STOPPED);
	error = aerror ? aerror : error;
	chain_put(dst->vchain);
	srcs_done(&top);
	if (error == STOPPED)
		return EINPROGRESS;
	w->resume = 0;
	return error ? hammer2_preerr(error, "resync of %s from %s", dst->path,
				      srcs[0]->path) : 0;
}

/* Commit dst once a pass left it the sources' (src's) copy. */
int
hammer2_resync_commit(hammer2_dev_t *dst, hammer2_dev_t *src,
		      hammer2_resync_stats_t *stats)
{
	int error = 0;

	/* committed without them, it would claim a tree it does not hold */
	if (stats->missing)
		error = hammer2_seterr(EIO, "lacks %llu element(s) no node could "
				       "read (the first unreadable: PFS \"%s\" "
				       "inode %llu key 0x%llx)",
				       (unsigned long long)stats->missing,
				       stats->lost[0].pfs,
				       (unsigned long long)stats->lost[0].inum,
				       (unsigned long long)stats->lost[0].key);
	if (error == 0 && (dst->vchain->flags & HAMMER2_CHAIN_MODIFIED))
		error = hammer2_flush(dst);
	return error ? hammer2_preerr(error, "resync of %s from %s", dst->path,
				      src->path) : 0;
}

/* Resync dst in one pass (callers hold every node's transaction lock). */
int
hammer2_resync(hammer2_dev_t **srcs, int nsrc, hammer2_dev_t *dst, int flags,
	       hammer2_resync_stats_t *stats)
{
	hammer2_resync_walk_t w;
	int error;

	memset(&w, 0, sizeof(w));
	error = hammer2_resync_pass(srcs, nsrc, dst, flags, stats, &w);
	if (error == 0)
		error = hammer2_resync_commit(dst, srcs[0], stats);
	return error;
}

/*
 * Heal keys [beg, end] under dparent, an inode (or volume root) of a live
 * node, from the same one on the other nodes (sparents, NULL where a node
 * has none): what dparent's node cannot read there is rewritten in the
 * transaction being built.  Callers hold every node's transaction lock
 * exclusively.
 */
int
hammer2_resync_heal(hammer2_chain_t *dparent, hammer2_chain_t **sparents,
		    int n, hammer2_key_t beg, hammer2_key_t end,
		    hammer2_resync_stats_t *stats)
{
	hammer2_dev_t *dst = dparent->hmp;
	struct resync rs = { .dst = dst, .since = dst->voldata->mirror_tid,
			     .mtid = dst->mtid, .stats = stats,
			     .flags = HAMMER2_RESYNC_SCRUB | HAMMER2_RESYNC_KEEP };
	struct srcs top;
	int error;

	memset(&top, 0, sizeof(top));
	for (int k = 0; k < n && k < HAMMER2_MAXCLUSTER; ++k) {
		if (sparents[k] == NULL)
			continue;
		rs.src[rs.nsrc] = sparents[k]->hmp;
		top.c[rs.nsrc++] = sparents[k];
	}
	top.looked = (1u << rs.nsrc) - 1;
	if (rs.nsrc == 0)
		return 0;
	hammer2_chain_ref(dparent);
	hammer2_chain_lock(dparent, 0);
	error = sync_children(&rs, &top, dparent, beg, end);
	chain_put(dparent);
	return error;
}
