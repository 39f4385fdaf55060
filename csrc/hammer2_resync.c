/*
 * Resync: bring one node (dst) of a cluster to the state another (src)
 * last committed.  Both trees are walked together from the super-root,
 * element by element (inodes, directory entries, data blocks, indirect
 * blocks being transparent).  An element whose source copy has not
 * changed since dst's last transaction (mirror_tid no newer, same
 * modify_tid) is skipped with its whole subtree, so a node that missed a
 * little is repaired by copying a little.  Elements are copied logically
 * (data decompressed, re-encoded by dst's flush), never as blockref
 * tables, since block offsets are each node's own.  The node-local PFS
 * "LOCAL" is left alone.  dst is committed at src's transaction id, which
 * makes it agree with src again.
 *
 * Callers hold src's transaction lock (shared or exclusive) and dst's
 * exclusively; src must have nothing pending (flushed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2_cluster.h"

#define LOCAL_LABEL	"LOCAL"

struct resync {
	hammer2_dev_t		*src, *dst;
	hammer2_tid_t		since;		/* dst's last transaction */
	hammer2_tid_t		mtid;		/* src's, what dst commits */
	hammer2_resync_stats_t	*stats;
	int			flags;		/* HAMMER2_RESYNC_* */
};

/* One element of a block tree level, as a merge walk needs it. */
struct elem {
	hammer2_key_t	key;
	uint8_t		type;
	uint8_t		keybits;
	hammer2_tid_t	modify_tid;
	hammer2_tid_t	mirror_tid;
};

struct elems {
	struct elem	*v;
	size_t		n, cap;
};

static int sync_children(struct resync *rs, hammer2_chain_t *s,
			 hammer2_chain_t *d, int top);
static int copy_elem(struct resync *rs, hammer2_chain_t *s,
		     hammer2_chain_t *dparent, hammer2_chain_t *d);

static int
elems_push(struct elems *e, const hammer2_blockref_t *bref)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 64;
		struct elem *v = realloc(e->v, cap * sizeof(*v));

		if (v == NULL)
			return hammer2_seterr(ENOMEM, "out of memory");
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = (struct elem){ bref->key, bref->type, bref->keybits,
				      bref->modify_tid, bref->mirror_tid };
	return 0;
}

#define LOCK_HOW(shared)	((shared) ? HAMMER2_RESOLVE_SHARED : 0)
#define LOOKUP_HOW(shared)	((shared) ? HAMMER2_LOOKUP_SHARED : 0)

/* The leaf elements directly under an inode (or the volume root). */
static int
elems_collect(hammer2_chain_t *parent, struct elems *e, int shared)
{
	int flags = HAMMER2_LOOKUP_NODATA | LOOKUP_HOW(shared);
	hammer2_chain_t *p, *c;
	hammer2_key_t next;
	int error;

	hammer2_chain_ref(parent);
	hammer2_chain_lock(parent, LOCK_HOW(shared));
	p = parent;
	c = hammer2_chain_lookup(&p, &next, 0, HAMMER2_KEY_MAX, &error, flags);
	while (c) {
		if ((error = elems_push(e, &c->bref)) != 0)
			break;
		c = hammer2_chain_next(&p, c, &next, 0, HAMMER2_KEY_MAX, &error,
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
static hammer2_chain_t *
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

/* ... with its data loaded and verified. */
static hammer2_chain_t *
elem_get(hammer2_chain_t *parent, const struct elem *el, int shared,
	 int *errorp)
{
	return elem_lookup(parent, el, shared, 0, errorp);
}

static void
chain_put(hammer2_chain_t *c)
{
	if (c) {
		hammer2_chain_unlock(c);
		hammer2_chain_drop(c);
	}
}

static int
is_pfs_label(const hammer2_chain_t *c, const char *label)
{
	const hammer2_inode_meta_t *m = &c->data->ipdata.meta;

	return (m->op_flags & HAMMER2_OPFLAG_PFSROOT) &&
	       m->name_len == strlen(label) &&
	       memcmp(c->data->ipdata.filename, label, m->name_len) == 0;
}

static int
has_children(const hammer2_chain_t *c)
{
	return c->bref.type == HAMMER2_BREF_TYPE_INODE &&
	       !(c->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_DIRECTDATA);
}

/* A source data block's logical content (decoded), malloc'd. */
static int
logical_data(hammer2_chain_t *s, uint8_t **bufp, size_t *bytesp)
{
	int comp = HAMMER2_DEC_COMP(s->bref.methods);
	size_t bytes = s->bytes;
	uint8_t *buf;
	int error;

	buf = malloc(HAMMER2_PBUFSIZE);
	if (buf == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	if (s->data == NULL || s->bytes == 0) {
		bytes = 0;
	} else if (comp != HAMMER2_COMP_NONE &&
		   !(s->flags & HAMMER2_CHAIN_MODIFIED)) {
		error = hammer2_decompress(comp, s->data, s->bytes, buf,
					   HAMMER2_PBUFSIZE, &bytes);
		if (error) {
			free(buf);
			return error;
		}
		if (bytes < HAMMER2_ALLOC_MIN)
			bytes = HAMMER2_ALLOC_MIN;
	} else {
		memcpy(buf, s->data, bytes);
	}
	*bufp = buf;
	*bytesp = bytes;
	return 0;
}

/*
 * Make dst's element (d, NULL: create under dparent) a copy of s; then
 * its children.  d and s are locked; s's data is loaded.
 */
static int
copy_elem(struct resync *rs, hammer2_chain_t *s, hammer2_chain_t *dparent,
	  hammer2_chain_t *d)
{
	hammer2_chain_t *p;
	uint8_t *buf = NULL;
	size_t bytes = s->bytes, n = bytes;
	hammer2_uuid_t fsid;
	int keep_fsid = 0;
	int error = 0;

	if (s->bref.type == HAMMER2_BREF_TYPE_DATA) {
		if ((error = logical_data(s, &buf, &bytes)) != 0)
			return error;
		n = bytes;
	} else if (s->bref.type == HAMMER2_BREF_TYPE_INODE) {
		n = has_children(s) ? offsetof(hammer2_inode_data_t, u) : bytes;
		/* an inode changing between embedded data and a blockset
		 * is replaced: its old blocks must not survive */
		if (d && !!has_children(d) != !!has_children(s)) {
			if ((error = hammer2_chain_delete(d, rs->mtid)) != 0)
				return error;
			chain_put(d);
			d = NULL;
			++rs->stats->deleted;
		}
		if (d && (s->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_PFSROOT)) {
			fsid = d->data->ipdata.meta.pfs_fsid;	/* each node's own */
			keep_fsid = 1;
		}
	}
	if (d == NULL) {
		hammer2_chain_ref(dparent);
		hammer2_chain_lock(dparent, 0);
		p = dparent;
		error = hammer2_chain_create(&p, &d, s->bref.key, s->bref.keybits,
					     s->bref.type, bytes, rs->mtid);
		chain_put(p);
		if (error == 0 && s->bref.type == HAMMER2_BREF_TYPE_INODE &&
		    (s->data->ipdata.meta.op_flags & HAMMER2_OPFLAG_PFSROOT)) {
			error = hammer2_uuid_random(&fsid);
			keep_fsid = 1;
		}
	} else {
		error = hammer2_chain_resize(d, bytes, rs->mtid);
	}
	if (error == 0) {
		if (n)
			memcpy(d->data, s->data && !buf ? (const void *)s->data : buf, n);
		if (keep_fsid)
			d->data->ipdata.meta.pfs_fsid = fsid;
		d->bref.methods = s->bref.methods;
		d->bref.embed = s->bref.embed;
		if (s->bref.type == HAMMER2_BREF_TYPE_DIRENT)
			d->bref.check = s->bref.check;		/* short name */
		if (s->bref.type == HAMMER2_BREF_TYPE_DATA)
			d->bref.methods &= (uint8_t)~HAMMER2_ENC_COMP(15);
		++rs->stats->copied;
		if (s->bref.type == HAMMER2_BREF_TYPE_DATA)
			rs->stats->bytes += bytes;
		if (has_children(s))
			error = sync_children(rs, s, d, 0);
		/* after the children, whose creation stamps their parents */
		d->bref.modify_tid = s->bref.modify_tid;
	}
	free(buf);
	chain_put(d);
	return error;
}

static int
elem_cmp(const struct elem *a, const struct elem *b)
{
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return a->type == b->type ? 0 : a->type < b->type ? -1 : 1;
}

/*
 * Scrub: an element both nodes hold in the same version is read back on
 * dst (its check code verified) and, where that fails, replaced by src's
 * copy; inodes are descended.
 */
static int
scrub_elem(struct resync *rs, hammer2_chain_t *s, hammer2_chain_t *d,
	   const struct elem *el, int top)
{
	hammer2_chain_t *sc, *dc;
	int error = 0;

	sc = elem_get(s, el, 1, &error);
	if (sc == NULL) {
		/* damaged on the source too: dst keeps its copy (same version) */
		if (error)
			++rs->stats->unreadable;
		return 0;
	}
	if (top && is_pfs_label(sc, LOCAL_LABEL)) {
		chain_put(sc);
		return 0;
	}
	dc = elem_lookup(d, el, 0, HAMMER2_LOOKUP_NODATA, &error);
	if (dc == NULL) {
		chain_put(sc);
		return error;
	}
	if (hammer2_chain_load_data(dc) != 0) {
		/* unreadable here: the source's copy replaces it */
		++rs->stats->repaired;
		error = hammer2_chain_delete(dc, rs->mtid);
		chain_put(dc);
		if (error == 0)
			error = copy_elem(rs, sc, d, NULL);
	} else if (has_children(sc) && has_children(dc)) {
		++rs->stats->skipped;
		error = sync_children(rs, sc, dc, 0);
		if (dc->flags & HAMMER2_CHAIN_MODIFIED)
			dc->bref.modify_tid = sc->bref.modify_tid;
		chain_put(dc);
	} else if (has_children(sc) != has_children(dc)) {
		error = copy_elem(rs, sc, d, dc);	/* consumes dc */
	} else {
		++rs->stats->skipped;
		chain_put(dc);
	}
	chain_put(sc);
	return error;
}

/*
 * Merge the elements under s (source) and d (dst): copy what dst lacks or
 * holds in an older version, delete what src no longer has.
 */
static int
sync_children(struct resync *rs, hammer2_chain_t *s, hammer2_chain_t *d,
	      int top)
{
	struct elems se = { 0 }, de = { 0 };
	size_t i = 0, j = 0;
	int error;

	error = elems_collect(s, &se, 1);
	if (error == 0)
		error = elems_collect(d, &de, 0);
	while (error == 0 && (i < se.n || j < de.n)) {
		int cmp = i >= se.n ? 1 : j >= de.n ? -1 : elem_cmp(&se.v[i], &de.v[j]);
		hammer2_chain_t *sc = NULL, *dc = NULL;

		if (cmp <= 0) {
			const struct elem *el = &se.v[i++];

			++rs->stats->visited;
			if (cmp == 0)
				++j;
			if (cmp == 0 && el->modify_tid == de.v[j - 1].modify_tid &&
			    (rs->flags & HAMMER2_RESYNC_SCRUB)) {
				if ((error = scrub_elem(rs, s, d, el, top)) != 0)
					break;
				continue;
			}
			if (cmp == 0 && el->mirror_tid <= rs->since &&
			    el->modify_tid == de.v[j - 1].modify_tid) {
				++rs->stats->skipped;
				continue;
			}
			sc = elem_get(s, el, 1, &error);
			if (sc == NULL) {
				if (error == 0)
					error = hammer2_seterr(EIO, "%s: element 0x%llx vanished",
							       rs->src->path,
							       (unsigned long long)el->key);
				break;
			}
			if (top && is_pfs_label(sc, LOCAL_LABEL)) {
				chain_put(sc);
				continue;
			}
			if (cmp == 0 && (dc = elem_get(d, el, 0, &error)) == NULL &&
			    error) {
				chain_put(sc);
				break;
			}
			error = copy_elem(rs, sc, d, dc);	/* consumes dc */
			chain_put(sc);
		} else {
			const struct elem *el = &de.v[j++];

			dc = elem_get(d, el, 0, &error);
			if (dc == NULL)
				break;
			if (!(top && is_pfs_label(dc, LOCAL_LABEL))) {
				error = hammer2_chain_delete(dc, rs->mtid);
				++rs->stats->deleted;
			}
			chain_put(dc);
		}
	}
	free(se.v);
	free(de.v);
	return error;
}

/* The super-root inode of a node, locked. */
static hammer2_chain_t *
sroot_get(hammer2_dev_t *hmp, int shared, int *errorp)
{
	struct elem el = { 0, HAMMER2_BREF_TYPE_INODE, 0, 0, 0 };
	hammer2_chain_t *c = elem_get(hmp->vchain, &el, shared, errorp);

	if (c == NULL && *errorp == 0)
		*errorp = hammer2_seterr(EINVAL, "%s: no super-root", hmp->path);
	return c;
}

int
hammer2_resync(hammer2_dev_t *src, hammer2_dev_t *dst, int flags,
	       hammer2_resync_stats_t *stats)
{
	struct resync rs = { src, dst, dst->voldata->mirror_tid,
			     src->voldata->mirror_tid, stats, flags };
	hammer2_chain_t *s, *d;
	int error;

	if (src == dst)
		return hammer2_seterr(EINVAL, "%s: resync from itself", src->path);
	if (src->vchain->flags & HAMMER2_CHAIN_MODIFIED)
		return hammer2_seterr(EBUSY, "%s: has unflushed changes", src->path);
	if (flags & HAMMER2_RESYNC_FULL)
		rs.since = 0;
	if (rs.since == rs.mtid)
		return 0;			/* already there */
	if (rs.since > rs.mtid)
		return hammer2_seterr(EINVAL, "%s: at transaction %llu, beyond the "
				      "source's %llu; commit on the cluster first",
				      dst->path, (unsigned long long)rs.since,
				      (unsigned long long)rs.mtid);
	dst->mtid = rs.mtid;
	dst->flush_error = 0;
	/* the header moves to src's transaction even if nothing else does */
	if ((error = hammer2_chain_modify(dst->vchain, rs.mtid)) != 0)
		return error;
	s = sroot_get(src, 1, &error);
	if (s == NULL)
		return error;
	d = sroot_get(dst, 0, &error);
	if (d == NULL) {
		chain_put(s);
		return error;
	}
	error = sync_children(&rs, s, d, 1);
	if (error == 0 && (d->flags & HAMMER2_CHAIN_MODIFIED))
		d->bref.modify_tid = s->bref.modify_tid;
	chain_put(d);
	chain_put(s);
	if (error == 0)
		error = hammer2_flush(dst);
	return error ? hammer2_preerr(error, "resync of %s from %s", dst->path,
				      src->path) : 0;
}

/*
 * Resync node dst_index of a cluster in place (callers hold every node's
 * transaction lock exclusively, in node order): commit what the live
 * nodes have pending, copy from live node src_index (-1: the first),
 * then rejoin.  A failed node's in-memory state is not trusted: it is
 * resynced after a reopen, when it comes back stale.
 */
int
hammer2_cluster_resync(hammer2_dev_t **devs, int ndevs, int dst_index,
		       int src_index, int flags, hammer2_resync_stats_t *stats)
{
	hammer2_dev_t *dst, *src = NULL;
	hammer2_node_t node;
	int foreign[HAMMER2_MAXCLUSTER];
	int live = 0, error;

	if (dst_index < 0 || dst_index >= ndevs)
		return hammer2_seterr(EINVAL, "no node %d in a cluster of %d",
				      dst_index, ndevs);
	dst = devs[dst_index];
	hammer2_node_get(dst, &node);
	/* a scrub takes a live node out while it is checked */
	if ((flags & HAMMER2_RESYNC_SCRUB) && node.state == HAMMER2_NODE_LIVE &&
	    ndevs > 1) {
		hammer2_node_stale(dst, "being scrubbed");
		hammer2_node_get(dst, &node);
	}
	if (node.state == HAMMER2_NODE_LIVE)
		return 0;
	if (node.state == HAMMER2_NODE_FAILED)
		return hammer2_seterr(EBUSY, "%s: failed (%s); reopen the cluster "
				      "to resync it", dst->path, node.why);
	for (int i = 0; i < ndevs; ++i) {
		if (!hammer2_node_live(devs[i]))
			continue;
		if (src == NULL)
			src = devs[i];
		++live;
	}
	if (src_index >= 0) {
		if (src_index >= ndevs || src_index == dst_index ||
		    !hammer2_node_live(devs[src_index]))
			return hammer2_seterr(EINVAL, "node %d is no live source",
					      src_index);
		src = devs[src_index];
	}
	hammer2_cluster_foreign(devs, ndevs, foreign);
	if (foreign[dst_index])
		flags |= HAMMER2_RESYNC_FULL;
	if (live < hammer2_quorum(ndevs))
		return hammer2_seterr(EROFS, "cannot resync %s: %d of %d nodes live, "
				      "quorum %d", dst->path, live, ndevs,
				      hammer2_quorum(ndevs));
	/*
	 * A node that went its own way past the cluster's transaction: the
	 * live nodes first commit one beyond it (join numbered them so).
	 */
	if (dst->voldata->mirror_tid >= src->voldata->mirror_tid ||
	    (flags & HAMMER2_RESYNC_FULL)) {
		for (int i = 0; i < ndevs; ++i) {
			if (hammer2_node_live(devs[i]) &&
			    (error = hammer2_chain_modify(devs[i]->vchain,
							  devs[i]->mtid)) != 0)
				return error;
		}
	}
	if ((error = hammer2_cluster_flush(devs, ndevs)) != 0)
		return error;
	if ((error = hammer2_resync(src, dst, flags, stats)) != 0) {
		char why[192];

		/* its in-memory tree is half copied now: out until reopened */
		snprintf(why, sizeof(why), "%s", hammer2_errmsg());
		hammer2_node_fail(dst, error, why);
		return hammer2_seterr(error, "%s", why);
	}
	return hammer2_cluster_join(devs, ndevs);
}
