/*
 * What the DIO layer's two halves share: buffers and loads
 * (hammer2_io.c) and write-back (hammer2_io_write.c).
 */
#ifndef HAMMER2_IO_PRIV_H_
#define HAMMER2_IO_PRIV_H_

#include "hammer2.h"

/* A queued write: a private copy of the block, or one it borrows. */
typedef struct hammer2_wreq {
	struct hammer2_wreq	*next;		/* on dio->wpend */
	struct hammer2_wreq	*qnext;		/* on the device's write queue */
	hammer2_io_t		*dio;		/* referenced */
	hammer2_off_t		off;
	int			bytes;
	uint64_t		seq;		/* order queued */
	int			attached;	/* on dio->wpend */
	int			done;
	const uint8_t		*data;		/* a pool buffer: page aligned,
						 * so O_DIRECT needs no bounce */
	hammer2_iohold_t	hold;		/* set: data is borrowed, and
						 * this releases it */
} hammer2_wreq_t;

void hammer2_wreq_free(hammer2_wreq_t *w);
hammer2_io_t *hammer2_io_get_locked(hammer2_dev_t *hmp, hammer2_off_t pbase);
int hammer2_io_range_check(hammer2_dev_t *hmp, hammer2_off_t off, int bytes);
uint64_t hammer2_io_crc_mask(hammer2_io_t *dio, hammer2_off_t off, int bytes);
void hammer2_io_done(hammer2_dev_t *hmp);

#endif /* HAMMER2_IO_PRIV_H_ */
