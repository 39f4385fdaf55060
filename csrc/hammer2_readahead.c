/*
 * File read-ahead: before a read copies its window block by block, start
 * loading every data block in it and in the window after it, neighbouring
 * buffers coalesced into large device reads (hammer2_io_prefetch), so the
 * device works ahead while the reader verifies and decodes.  The loaded
 * buffers wait in the DIO cache; the reader's own loads find them there
 * or wait on those in flight.  Beside direct reads (d) only the window's
 * other blocks are loaded: past it, the next window reads directly too.
 */
#include "hammer2.h"

#define READAHEAD_MAX	(8 << 20)	/* bytes of file looked ahead, at most */

void
hammer2_file_readahead(hammer2_cluster_t *ip, hammer2_off_t off, size_t len,
		       const hammer2_direct_t *d)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_io_run_t run = { 0 };
	hammer2_off_t end;
	hammer2_key_t next;

	if (len <= HAMMER2_PBUFSIZE)
		return;			/* one block: nothing to overlap */
	/* and as much again past it: a sequential reader's next window */
	end = d ? off + len :
	      off + (2 * len < READAHEAD_MAX ? 2 * len : READAHEAD_MAX);
	cparent = hammer2_cluster_lookup_init(ip, HAMMER2_LOOKUP_SHARED);
	if (cparent == NULL)
		return;
	cluster = hammer2_cluster_lookup(cparent, &next, off & ~HAMMER2_PBUFMASK64,
					 end - 1, HAMMER2_LOOKUP_SHARED |
					 HAMMER2_LOOKUP_NODATA);
	while (cluster) {
		/* the node the read will go to first, and its copy */
		hammer2_chain_t *chain = hammer2_cluster_load_chain(cluster);
		const hammer2_blockref_t *bref = chain ? &chain->bref :
						 hammer2_cluster_bref(cluster);
		int radix = (int)(bref->data_off & HAMMER2_OFF_MASK_RADIX);
		hammer2_off_t pbase = bref->data_off & HAMMER2_OFF_MASK &
				      ~HAMMER2_PBUFMASK64;
		hammer2_dev_t *hmp = chain ? chain->hmp : NULL;

		/* holes and odd blockrefs are the reader's business */
		if (bref->type == HAMMER2_BREF_TYPE_DATA && hmp &&
		    radix >= HAMMER2_RADIX_MIN && radix <= HAMMER2_RADIX_MAX &&
		    (d == NULL || !hammer2_direct_chosen(d, bref->key)))
			hammer2_io_run_add(&run, hmp, pbase);
		cluster = hammer2_cluster_next(cparent, cluster, &next, next,
					       end - 1, HAMMER2_LOOKUP_SHARED |
					       HAMMER2_LOOKUP_NODATA);
	}
	hammer2_cluster_lookup_done(cparent);
	hammer2_io_run_flush(&run);
}
