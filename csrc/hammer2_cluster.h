/*
 * Cluster membership, quorum and resync (node state: hammer2_node.c;
 * node-set operations: hammer2_quorum.c; the resync engine:
 * hammer2_resync.c, hammer2_resync_src.c): the nodes of a cluster are
 * devices holding the same PFSes as masters.  With N nodes an operation
 * needs floor(N/2)+1 of them to agree; nodes that disagree are stale,
 * nodes whose writes failed are failed, and both are brought back by a
 * resync.
 */
#ifndef HAMMER2_CLUSTER_H_
#define HAMMER2_CLUSTER_H_

#include "hammer2.h"

static inline int
hammer2_quorum(int nnodes)
{
	return nnodes / 2 + 1;
}

int hammer2_cluster_join(hammer2_dev_t **devs, int ndevs);
void hammer2_cluster_foreign(hammer2_dev_t **devs, int ndevs, int *foreign);
int hammer2_cluster_writable(hammer2_dev_t **devs, int ndevs);
int hammer2_cluster_flush(hammer2_dev_t **devs, int ndevs);
int hammer2_cluster_bulkfree(hammer2_dev_t **devs, int ndevs, uint64_t *freedp);
int hammer2_pfs_node_swap(hammer2_pfs_t *pfs, int index, hammer2_dev_t *hmp);
int hammer2_pfs_root_lookup(hammer2_pfs_t *pfs, hammer2_dev_t *hmp,
			    hammer2_chain_t **chainp);
void hammer2_pfs_root_set(hammer2_pfs_t *pfs, int index, hammer2_chain_t *chain);
void hammer2_pfs_revalidate(hammer2_pfs_t *pfs);

/* A node's own state (hammer2_node.c). */
void hammer2_node_set(hammer2_dev_t *hmp, int state, int error, const char *why);
int hammer2_node_live(const hammer2_dev_t *hmp);
void hammer2_node_fail(hammer2_dev_t *hmp, int error, const char *what);
void hammer2_node_stale(hammer2_dev_t *hmp, const char *why);
void hammer2_node_read_error(hammer2_dev_t *hmp, int error, const char *what);
void hammer2_node_get(hammer2_dev_t *hmp, hammer2_node_t *node);
hammer2_tid_t hammer2_node_tid(const hammer2_dev_t *hmp);

/* The rest of the cluster API (hammer2_cluster_ops.c). */
void hammer2_cluster_bref_logical(const hammer2_cluster_t *cluster,
				  hammer2_blockref_t *bref);
int hammer2_cluster_modified(hammer2_cluster_t *cluster);
int hammer2_cluster_wait(hammer2_cluster_t *cluster);
hammer2_cluster_t *hammer2_cluster_parent(hammer2_cluster_t *cluster);
hammer2_cluster_t *hammer2_cluster_scan(hammer2_cluster_t *cparent,
					hammer2_cluster_t *cluster, int flags);

typedef struct hammer2_scan_elem {
	uint8_t		type;
	uint8_t		keybits;
	hammer2_key_t	key;
	hammer2_tid_t	modify_tid;
	hammer2_off_t	data_off;	/* logical: the size radix only */
	int		radix;
	uint32_t	nodes;		/* bit i: node i holds it */
	int		focus;		/* node index serving it */
	int		modified;
	int		parent_ok;	/* under each node's own parent */
} hammer2_scan_elem_t;

typedef int (*hammer2_scan_cb_t)(void *arg, const hammer2_scan_elem_t *el);

int hammer2_cluster_scan_inode(hammer2_pfs_t *pfs, hammer2_tid_t inum,
			       hammer2_scan_cb_t cb, void *arg);

/* An element no node could read, for the report. */
typedef struct hammer2_resync_lost {
	char		pfs[HAMMER2_INODE_MAXNAME + 1];	/* "": the super-root */
	hammer2_tid_t	inum;		/* the inode holding it */
	hammer2_key_t	key;
	uint8_t		type;
	hammer2_off_t	off;		/* on the node, 0: it lacks it */
} hammer2_resync_lost_t;

#define HAMMER2_RESYNC_LOST_MAX	16

/* A node's sync thread (hammer2_nodeset.c): what it does and did. */
typedef struct hammer2_sync_status {
	int		running;
	int		paused;		/* held by hammer2_nodeset_sync_pause */
	int		passes;		/* of this sync, begun so far */
	int		error;		/* of the last attempt */
	uint64_t	syncs;		/* attempts that brought the node back */
	uint64_t	done_elems;	/* this sync: elements copied */
	uint64_t	done_bytes;	/* ... data bytes copied */
	uint64_t	total_elems;	/* the source's inodes: an upper bound */
	uint64_t	total_bytes;	/* ... and data bytes */
	char		last_error[192];
} hammer2_sync_status_t;

/* Resync statistics. */
typedef struct hammer2_resync_stats {
	uint64_t	visited;	/* source elements compared */
	uint64_t	skipped;	/* subtrees unchanged since the node's tid */
	uint64_t	copied;		/* elements written to the node */
	uint64_t	deleted;	/* elements the node had and should not */
	uint64_t	bytes;		/* logical data bytes copied */
	uint64_t	repaired;	/* unreadable elements replaced */
	uint64_t	unreadable;	/* ... that no node could provide */
	uint64_t	missing;	/* ... of those, ones the node lacks now */
	hammer2_resync_lost_t lost[HAMMER2_RESYNC_LOST_MAX];	/* the first */
	hammer2_sync_status_t *progress;	/* kept current, if set */
} hammer2_resync_stats_t;

/* Also read back what both hold, replacing what fails its check. */
#define HAMMER2_RESYNC_SCRUB	0x0001
/* Compare everything: the node's transaction ids say nothing (another
 * cluster's node being made a copy). */
#define HAMMER2_RESYNC_FULL	0x0002
/* The node was live: elements only it holds are ones the sources cannot
 * read, not ones the cluster deleted, and stay. */
#define HAMMER2_RESYNC_KEEP	0x0004

/*
 * A resync in passes, so the cluster serves in between: a pass walks the
 * elements changed since `since` and may stop between two elements (when
 * stop() says so), to go on from there under the next hold of the locks.
 * What changed while it was stopped is caught by another pass (since: the
 * sources' transaction when the stopped one began); a pass that never
 * stopped leaves the node the sources' copy.
 */
#define HAMMER2_RESYNC_DEPTH	16	/* levels a pass can stop in */

typedef struct hammer2_resync_walk {
	hammer2_tid_t	since;		/* what this pass may skip */
	hammer2_tid_t	mtid;		/* the sources' when it began */
	int		passes;		/* begun */
	int		stopped;	/* this pass stopped at least once */
	int		resume;		/* levels of cursor[] to go on from */
	struct {
		hammer2_key_t	key;
		uint8_t		type;
	}		cursor[HAMMER2_RESYNC_DEPTH];
	uint32_t	live;		/* bit i: node i was live at the start */
	int		flags;		/* HAMMER2_RESYNC_*, as it began */
	int		(*stop)(void *arg);	/* NULL: never */
	void		*arg;
} hammer2_resync_walk_t;

int hammer2_resync(hammer2_dev_t **srcs, int nsrc, hammer2_dev_t *dst,
		   int flags, hammer2_resync_stats_t *stats);
int hammer2_resync_pass(hammer2_dev_t **srcs, int nsrc, hammer2_dev_t *dst,
			int flags, hammer2_resync_stats_t *stats,
			hammer2_resync_walk_t *w);
int hammer2_resync_commit(hammer2_dev_t *dst, hammer2_dev_t *src,
			  hammer2_resync_stats_t *stats);
int hammer2_cluster_resync(hammer2_dev_t **devs, int ndevs, int dst_index,
			   int src_index, int flags,
			   hammer2_resync_stats_t *stats);
int hammer2_cluster_resync_step(hammer2_dev_t **devs, int ndevs, int dst_index,
				int src_index, int flags,
				hammer2_resync_stats_t *stats,
				hammer2_resync_walk_t *w);
void hammer2_cluster_resync_abort(hammer2_dev_t *dst);
int hammer2_resync_heal(hammer2_chain_t *dparent, hammer2_chain_t **sparents,
			int n, hammer2_key_t beg, hammer2_key_t end,
			hammer2_resync_stats_t *stats);

/*
 * Self-heal on read: what a node could not read, noted by the cluster's
 * read paths (hammer2_heal.c) and rewritten at the next cluster flush
 * (hammer2_heal_run.c).  Listed on the node under its faultlock.
 */
struct hammer2_heal {
	struct hammer2_heal	*next;
	hammer2_chain_t		*dparent;	/* holder on the damaged node */
	hammer2_chain_t		*sparent[HAMMER2_MAXCLUSTER]; /* on the others */
	hammer2_key_t		beg, end;
};

struct hammer2_heal *hammer2_heal_take(hammer2_dev_t *hmp);
void hammer2_heal_free(struct hammer2_heal *h);
void hammer2_heal_note(hammer2_chain_t *bad, hammer2_chain_t **good, int n,
		       hammer2_key_t beg, hammer2_key_t end);
void hammer2_heal_run(hammer2_dev_t **devs, int ndevs);
int hammer2_heal_pending(hammer2_dev_t *hmp);
void hammer2_heal_forget(hammer2_dev_t **devs, int ndevs);

/*
 * An open cluster's node list, its lock, the PFSes open over it and a
 * sync thread per node (hammer2_nodeset.c).
 */
typedef struct hammer2_nodeset {
	pthread_mutex_t		lock;		/* the list; cluster operations */
	pthread_mutex_t		statlock;	/* sync status, stopping */
	pthread_cond_t		cv;
	hammer2_dev_t		*devs[HAMMER2_MAXCLUSTER];
	int			ndevs;
	hammer2_pfs_t		**pfs;		/* open over the nodes */
	int			npfs;
	hammer2_dev_t		**grave;	/* replaced, closed at the end */
	int			ngrave;
	pthread_t		threads[HAMMER2_MAXCLUSTER];
	int			nthreads;
	hammer2_sync_status_t	sync[HAMMER2_MAXCLUSTER];
	int			stopping;
	int			waiting;	/* threads blocked on the lock */
	int64_t			pause_at[HAMMER2_MAXCLUSTER];	/* -1: never */
	int			retry_ms;	/* first wait after a failed sync */
	int			retry_max_ms;	/* ... doubling up to this */
} hammer2_nodeset_t;

int hammer2_nodeset_create(hammer2_dev_t **devs, int ndevs, int autosync,
			   int retry_max_ms, hammer2_nodeset_t **nsp);
void hammer2_nodeset_destroy(hammer2_nodeset_t *ns);
void hammer2_nodeset_hold(hammer2_nodeset_t *ns);
void hammer2_nodeset_release(hammer2_nodeset_t *ns);
void hammer2_nodeset_begin(hammer2_nodeset_t *ns, int write);
void hammer2_nodeset_end(hammer2_nodeset_t *ns);
int hammer2_nodeset_pfs_open(hammer2_nodeset_t *ns, const char *label,
			     hammer2_pfs_t **pfsp);
void hammer2_nodeset_pfs_close(hammer2_nodeset_t *ns, hammer2_pfs_t *pfs);
int hammer2_nodeset_reopen(hammer2_nodeset_t *ns, int index);
int hammer2_nodeset_resync(hammer2_nodeset_t *ns, int index, int flags,
			   hammer2_resync_stats_t *stats);
void hammer2_nodeset_sync_status(hammer2_nodeset_t *ns, int index,
				 hammer2_sync_status_t *st);
void hammer2_nodeset_sync_pause(hammer2_nodeset_t *ns, int index,
				int64_t elems);
int hammer2_nodeset_sync_paused(hammer2_nodeset_t *ns, int index,
				int timeout_ms);

#endif /* HAMMER2_CLUSTER_H_ */
