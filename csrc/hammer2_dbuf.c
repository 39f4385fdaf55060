/*
 * The logical data of a modified DATA block, shared by its chains on the
 * nodes of a cluster.  A cluster write fills the focus's buffer and the
 * other live nodes' chains take a reference to it (hammer2_cluster_modsync)
 * instead of a copy each; the first node's flush to encode it keeps the
 * encoding (compression and check code depend on the data and the
 * algorithms only), which the other nodes' flushes copy instead of
 * encoding again.  Shared data is never written: a chain modified again
 * (hammer2_chain_modify) takes a private copy first, so what the others
 * hold, and its kept encoding, stay as they are.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

struct hammer2_dbuf {
	int			refs;		/* atomic: chains sharing it */
	uint8_t			*data;
	pthread_mutex_t		lock;		/* what follows */
	int			encoded;
	int			comp_asked;	/* the algorithm enc was asked */
	hammer2_encjob_t	enc;		/* its inputs and outputs */
	uint8_t			*media;		/* enc.psize bytes */
};

static void
dbuf_drop(struct hammer2_dbuf *d)
{
	int refs = __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL);

	KKASSERT(refs >= 0);
	if (refs > 0)
		return;
	free(d->media);
	pthread_mutex_destroy(&d->lock);
	free(d->data);
	free(d);
}

/* The chain's data goes (its reference to shared data, or its buffer). */
void
hammer2_chain_data_free(hammer2_chain_t *chain)
{
	if (chain->dbuf) {
		KKASSERT((uint8_t *)chain->data == chain->dbuf->data);
		dbuf_drop(chain->dbuf);
		chain->dbuf = NULL;
	} else {
		free(chain->data);
	}
	chain->data = NULL;
}

/*
 * chain (a modified DATA block of another node, as large as from's) takes
 * a reference to from's data in place of its own; from's becomes shared
 * if it was not.
 */
int
hammer2_chain_data_share(hammer2_chain_t *chain, hammer2_chain_t *from)
{
	struct hammer2_dbuf *d = from->dbuf;

	KKASSERT(chain->bref.type == HAMMER2_BREF_TYPE_DATA &&
		 (chain->flags & from->flags & HAMMER2_CHAIN_MODIFIED) &&
		 (chain->flags & from->flags & HAMMER2_CHAIN_OWNED) &&
		 chain->bytes == from->bytes && chain->hmp != from->hmp);
	if (d && d == chain->dbuf)
		return 0;
	if (d == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL)
			return hammer2_seterr(ENOMEM, "out of memory");
		d->refs = 1;
		d->data = (uint8_t *)from->data;
		pthread_mutex_init(&d->lock, NULL);
		from->dbuf = d;
	}
	hammer2_chain_data_free(chain);
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_ACQ_REL);
	chain->dbuf = d;
	chain->data = (hammer2_media_data_t *)d->data;
	return 0;
}

/* Before the chain's data is written: a copy of its own. */
int
hammer2_chain_data_private(hammer2_chain_t *chain)
{
	uint8_t *buf;

	if (chain->dbuf == NULL)
		return 0;
	if ((buf = malloc(chain->bytes ? chain->bytes : 1)) == NULL)
		return hammer2_seterr(ENOMEM, "out of memory");
	memcpy(buf, chain->data, chain->bytes);
	hammer2_chain_data_free(chain);
	chain->data = (hammer2_media_data_t *)buf;
	return 0;
}

static int
same_job(const hammer2_encjob_t *a, const hammer2_encjob_t *b)
{
	return a->len == b->len && a->level == b->level &&
	       a->check == b->check && a->zero_holes == b->zero_holes;
}

/*
 * The encoding another node's flush kept for the chain's data, for job
 * j (prepared: its source, algorithms and destination): copied in, and
 * j marked cached.  0 if there is none for these algorithms.
 */
int
hammer2_chain_encoded(hammer2_chain_t *chain, hammer2_encjob_t *j)
{
	struct hammer2_dbuf *d = chain->dbuf;
	int hit = 0;

	if (d == NULL)
		return 0;
	pthread_mutex_lock(&d->lock);
	if (d->encoded && d->enc.src == j->src && same_job(&d->enc, j) &&
	    d->comp_asked == j->comp) {
		j->comp = d->enc.comp;
		j->zero = d->enc.zero;
		j->psize = d->enc.psize;
		j->bref.check = d->enc.bref.check;
		if (!j->zero)
			memcpy(j->dst, d->media, j->psize);
		j->cached = 1;
		hit = 1;
	}
	pthread_mutex_unlock(&d->lock);
	return hit;
}

/*
 * After the chain's data was encoded into j (asked for compression
 * comp_asked): kept for the other sharers.
 */
void
hammer2_chain_encoded_keep(hammer2_chain_t *chain, const hammer2_encjob_t *j,
			   int comp_asked)
{
	struct hammer2_dbuf *d = chain->dbuf;
	uint8_t *media = NULL;

	if (d == NULL || j->cached ||
	    __atomic_load_n(&d->refs, __ATOMIC_ACQUIRE) < 2)
		return;
	if (!j->zero && (media = malloc(j->psize ? j->psize : 1)) == NULL)
		return;			/* the others encode it themselves */
	if (media)
		memcpy(media, j->dst, j->psize);
	pthread_mutex_lock(&d->lock);
	if (!d->encoded) {
		d->enc = *j;
		d->comp_asked = comp_asked;
		d->media = media;
		d->encoded = 1;
		media = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	free(media);
}
