/*
 * File read-ahead: before a read copies its window block by block, start
 * asynchronous loads of every data block in it, so the device (an NBD
 * server, a disk queue) works on them in parallel while the reader
 * verifies and decodes the first ones.  The loaded buffers wait in the DIO
 * cache; the reader's own loads find them there or join those in flight.
 */
#include <stdlib.h>
#include "hammer2.h"

#define READAHEAD_MAX	(8 << 20)	/* bytes of file looked ahead, at most */

static void
prefetch_done(hammer2_iocb_t *iocb)
{
	hammer2_io_putblk(&iocb->dio);
	free(iocb);
}

static void
prefetch(hammer2_dev_t *hmp, const hammer2_blockref_t *bref)
{
	int radix = (int)(bref->data_off & HAMMER2_OFF_MASK_RADIX);
	hammer2_iocb_t *iocb;

	if (radix < HAMMER2_RADIX_MIN || radix > HAMMER2_RADIX_MAX)
		return;			/* a hole, or left to the reader to reject */
	if ((iocb = calloc(1, sizeof(*iocb))) == NULL)
		return;			/* read-ahead is only a hint */
	iocb->callback = prefetch_done;
	iocb->flags = HAMMER2_IOCB_ASYNC;
	iocb->off = bref->data_off & HAMMER2_OFF_MASK;
	iocb->bytes = 1 << radix;
	hammer2_io_load_async(hmp, iocb);
}

void
hammer2_file_readahead(hammer2_cluster_t *ip, hammer2_off_t off, size_t len)
{
	hammer2_cluster_t *cparent, *cluster;
	hammer2_key_t next;
	hammer2_off_t end;
	int n = 0;

	if (len <= HAMMER2_PBUFSIZE)
		return;			/* one block: nothing to overlap */
	end = off + (len < READAHEAD_MAX ? len : READAHEAD_MAX);
	cparent = hammer2_cluster_lookup_init(ip, HAMMER2_LOOKUP_SHARED);
	if (cparent == NULL)
		return;
	cluster = hammer2_cluster_lookup(cparent, &next, off & ~HAMMER2_PBUFMASK64,
					 end - 1, HAMMER2_LOOKUP_SHARED |
					 HAMMER2_LOOKUP_NODATA);
	while (cluster) {
		const hammer2_blockref_t *bref = hammer2_cluster_bref(cluster);

		/* the first block is the reader's own next load */
		if (bref->type == HAMMER2_BREF_TYPE_DATA && n++ > 0 &&
		    cluster->focus)
			prefetch(cluster->focus->hmp, bref);
		cluster = hammer2_cluster_next(cparent, cluster, &next, next,
					       end - 1, HAMMER2_LOOKUP_SHARED |
					       HAMMER2_LOOKUP_NODATA);
	}
	if (cluster) {
		hammer2_cluster_unlock(cluster);
		hammer2_cluster_drop(cluster);
	}
	hammer2_cluster_lookup_done(cparent);
}
