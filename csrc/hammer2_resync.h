/*
 * What the resync walk (hammer2_resync.c) shares with its element lists
 * and source sets (hammer2_resync_src.c).
 */
#ifndef HAMMER2_RESYNC_H_
#define HAMMER2_RESYNC_H_

#include "hammer2_cluster.h"

#define RESYNC_AHEAD	64	/* copied data blocks written ahead at once */

struct resync {
	hammer2_dev_t		*src[HAMMER2_MAXCLUSTER];	/* by preference */
	int			nsrc;
	hammer2_dev_t		*dst;
	hammer2_tid_t		since;		/* dst's last transaction */
	hammer2_tid_t		mtid;		/* the sources', what dst commits */
	hammer2_resync_stats_t	*stats;
	int			flags;		/* HAMMER2_RESYNC_* */
	char			label[HAMMER2_INODE_MAXNAME + 1]; /* PFS walked */
	hammer2_resync_walk_t	*walk;		/* a pass; NULL: a heal */
	int			depth;		/* of sync_children */
	int			nahead;
	hammer2_chain_t		*ahead[RESYNC_AHEAD];	/* copied data blocks,
							 * referenced */
};

/* One element of a block tree level, as a merge walk needs it. */
struct elem {
	hammer2_key_t	key;
	uint8_t		type;
	uint8_t		keybits;
	hammer2_tid_t	modify_tid;
	hammer2_tid_t	mirror_tid;
	int		src;		/* the source that listed it */
	hammer2_off_t	data_off;	/* its block there (for read-ahead) */
};

/* The elements under a parent, and the indirect blocks that did not load. */
struct elems {
	struct elem	*v;
	size_t		n, cap;
	hammer2_chain_t	**bad;		/* referenced, unlocked */
	size_t		nbad;
};

/*
 * An element of the sources: its chain on each source node, looked up
 * on first use (most elements are served by the first source), NULL
 * where that source cannot reach it.
 */
struct srcs {
	struct srcs	*up;		/* the parent element's */
	struct elem	el;
	hammer2_chain_t	*c[HAMMER2_MAXCLUSTER];
	uint32_t	looked;		/* bit k: c[k] looked up */
	uint32_t	held;		/* bit k: c[k] locked and referenced */
	int		fatal;		/* a source failed other than by damage */
};

/* The sources' elements under one parent, and what no source can read. */
struct srcs_level {
	struct elems	e;
	struct elems	holes[HAMMER2_MAXCLUSTER];
	uint32_t	listed;		/* bit k: source k was listed */
};

int elem_cmp(const struct elem *a, const struct elem *b);
int elems_collect(hammer2_chain_t *parent, struct elems *e, int shared,
		  hammer2_key_t beg, hammer2_key_t end);
void elems_free(struct elems *e);
hammer2_chain_t *elem_lookup(hammer2_chain_t *parent, const struct elem *el,
			     int shared, int flags, int *errorp);

void srcs_top(struct resync *rs, struct srcs *top);
void srcs_init(struct srcs *s, struct srcs *up, const struct elem *el);
void srcs_done(struct srcs *s);
hammer2_chain_t *srcs_get(struct resync *rs, struct srcs *s, int *errorp);
int srcs_collect(struct resync *rs, struct srcs *s, struct srcs_level *lv,
		 hammer2_key_t beg, hammer2_key_t end);
int srcs_unknown(const struct srcs_level *lv, hammer2_key_t beg,
		 hammer2_key_t end);
void srcs_level_free(struct srcs_level *lv);
size_t srcs_prefetch(const struct resync *rs, const struct elems *e,
		     size_t from);

#endif /* HAMMER2_RESYNC_H_ */
