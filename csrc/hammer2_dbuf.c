/*
 * The logical data of a modified DATA block, shared by its chains on the
 * nodes of a cluster.  A cluster write fills the focus's buffer and the
 * other live nodes' chains take a reference to it (hammer2_cluster_modsync)
 * instead of a copy each.  The first node flush to reach it claims it
 * and encodes it into a buffer it keeps (compression and check code
 * depend on the data and the algorithms only); the other nodes' flushes,
 * side by side, wait for that and write that buffer instead of encoding
 * the block again; their queued writes borrow it rather than copy it
 * (hammer2_chain_media_hold).  Shared data is
 * never written: a chain modified again (hammer2_chain_modify) takes a
 * private copy first, so what the others hold, and its encoding, stay.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "hammer2.h"

enum { DBUF_NONE, DBUF_CLAIMED, DBUF_ENCODED };

struct hammer2_dbuf {
	int			refs;		/* atomic: chains sharing it */
	uint8_t			*data;
	/* under enc_lock: */
	int			state;		/* DBUF_* */
	int			preset;		/* enc is a copy of a block's
						 * media, whatever a job asks */
	int			comp_asked;	/* the algorithm enc was asked */
	hammer2_encjob_t	enc;		/* its inputs and outputs */
	uint8_t			*media;		/* the encoding, enc.psize bytes */
};

/* Encodings of every shared buffer: rare, short holds. */
static pthread_mutex_t enc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t enc_cv = PTHREAD_COND_INITIALIZER;

static void
dbuf_drop(struct hammer2_dbuf *d)
{
	int refs = __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL);

	KKASSERT(refs >= 0);
	if (refs > 0)
		return;
	if (d->media)
		hammer2_iobuf_free(d->media);
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
same_job(const struct hammer2_dbuf *d, const hammer2_encjob_t *j)
{
	return d->enc.src == j->src && d->enc.len == j->len &&
	       d->comp_asked == j->comp && d->enc.level == j->level &&
	       d->enc.check == j->check && d->enc.zero_holes == j->zero_holes;
}

/*
 * The kept encoding for j (prepared alike), which is marked cached: its
 * media is the shared one, alive while the chain holds its reference.
 */
static void
enc_copy(hammer2_chain_t *chain, const struct hammer2_dbuf *d,
	 hammer2_encjob_t *j)
{
	if (!d->preset)
		__atomic_add_fetch(&chain->hmp->node.encodes_copied, 1,
				   __ATOMIC_RELAXED);
	j->comp = d->enc.comp;
	j->zero = d->enc.zero;
	j->psize = d->enc.psize;
	j->bref.check = d->enc.bref.check;
	j->dst = d->media;
	j->cached = 1;
}

/*
 * Before job j (prepared: source, algorithms, destination) of the chain
 * is encoded: HERE, this flush encodes it; CLAIMED, and keeps it for the
 * other sharers (hammer2_chain_encoded_keep); COPIED, another node's
 * encoding is j's; WAIT, another node's flush is encoding it:
 * hammer2_chain_encoded_wait once this flush kept what it claimed (so no
 * two wait on each other).  j is marked cached when COPIED or WAIT.
 */
int
hammer2_chain_encode_claim(hammer2_chain_t *chain, hammer2_encjob_t *j)
{
	struct hammer2_dbuf *d = chain->dbuf;
	int how = HAMMER2_ENC_HERE;

	if (d == NULL)
		return HAMMER2_ENC_HERE;
	pthread_mutex_lock(&enc_lock);
	if (d->state == DBUF_ENCODED && (d->preset || same_job(d, j))) {
		enc_copy(chain, d, j);
		how = HAMMER2_ENC_COPIED;
	} else if (d->state == DBUF_CLAIMED && same_job(d, j)) {
		j->cached = 1;
		how = HAMMER2_ENC_WAIT;
	} else if (d->state == DBUF_NONE &&
		   __atomic_load_n(&d->refs, __ATOMIC_ACQUIRE) > 1 &&
		   (d->media = hammer2_iobuf_alloc()) != NULL) {
		/* encoded straight into the buffer the others will use (a
		 * DIO pool buffer: page aligned, so O_DIRECT needs no bounce) */
		how = HAMMER2_ENC_CLAIMED;
		d->state = DBUF_CLAIMED;
		d->comp_asked = j->comp;
		j->dst = d->media;
		d->enc = *j;
	}
	pthread_mutex_unlock(&enc_lock);
	return how;
}

/* After this flush encoded job j it claimed: there for the other sharers. */
void
hammer2_chain_encoded_keep(hammer2_chain_t *chain, const hammer2_encjob_t *j)
{
	struct hammer2_dbuf *d = chain->dbuf;

	pthread_mutex_lock(&enc_lock);
	KKASSERT(d && d->state == DBUF_CLAIMED && d->enc.dst == j->dst);
	d->state = DBUF_ENCODED;
	d->enc.comp = j->comp;
	d->enc.zero = j->zero;
	d->enc.psize = j->psize;
	d->enc.bref.check = j->bref.check;
	pthread_cond_broadcast(&enc_cv);
	pthread_mutex_unlock(&enc_lock);
}

/* For WAIT: the other node's encoding, once it is there. */
void
hammer2_chain_encoded_wait(hammer2_chain_t *chain, hammer2_encjob_t *j)
{
	struct hammer2_dbuf *d = chain->dbuf;

	pthread_mutex_lock(&enc_lock);
	while (d->state == DBUF_CLAIMED)
		pthread_cond_wait(&enc_cv, &enc_lock);
	KKASSERT(d->state == DBUF_ENCODED && same_job(d, j));
	enc_copy(chain, d, j);
	pthread_mutex_unlock(&enc_lock);
}

static void
dbuf_rele(void *arg)
{
	dbuf_drop(arg);
}

/*
 * A hold on the chain's shared encoding media, for a write to borrow it:
 * 0 (no hold) when media is not that encoding.
 */
int
hammer2_chain_media_hold(hammer2_chain_t *chain, const void *media,
			 hammer2_iohold_t *hold)
{
	struct hammer2_dbuf *d = chain->dbuf;

	if (d == NULL || media == NULL || media != d->media)
		return 0;
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_ACQ_REL);
	hold->rele = dbuf_rele;
	hold->arg = d;
	return 1;
}

/*
 * chain (a modified DATA block, its data just decoded from from's media:
 * a resync's copy) is encoded as from is on its node, byte for byte: its
 * flush writes a copy of that media, with from's compression and check
 * code, instead of encoding the data again.  A copy of the media, so the
 * source's buffer can go; the chain modified again encodes anew.
 */
int
hammer2_chain_encoded_preset(hammer2_chain_t *chain, const hammer2_chain_t *from)
{
	struct hammer2_dbuf *d;

	KKASSERT(chain->bref.type == HAMMER2_BREF_TYPE_DATA &&
		 from->bref.type == HAMMER2_BREF_TYPE_DATA &&
		 (chain->flags & HAMMER2_CHAIN_MODIFIED));
	/* from modified in the transaction being built has no media yet */
	if ((from->flags & HAMMER2_CHAIN_MODIFIED) || chain->dbuf ||
	    from->data == NULL || from->bytes == 0 ||
	    from->bytes > HAMMER2_PBUFSIZE)
		return 0;
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->media = hammer2_iobuf_alloc()) == NULL) {
		free(d);
		return hammer2_seterr(ENOMEM, "out of memory");
	}
	memcpy(d->media, from->data, from->bytes);
	d->refs = 1;
	d->data = (uint8_t *)chain->data;
	d->state = DBUF_ENCODED;
	d->preset = 1;
	d->enc.comp = HAMMER2_DEC_COMP(from->bref.methods);
	d->enc.psize = from->bytes;
	d->enc.bref.check = from->bref.check;
	chain->dbuf = d;
	return 0;
}
