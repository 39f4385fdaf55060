/*
 * The I/O worker pool behind the asynchronous DIO layer: a fixed set of
 * threads draining one bounded FIFO of requests.  Submitting to a full
 * queue blocks (back-pressure) except from a worker itself, which runs
 * the request inline so a callback that issues more I/O cannot deadlock
 * the pool.
 */
#ifndef HAMMER2_IOPOOL_H_
#define HAMMER2_IOPOOL_H_

#define HAMMER2_IOPOOL_THREADS	8
#define HAMMER2_IOPOOL_DEPTH	128	/* queued requests, at most */

typedef struct hammer2_ioreq hammer2_ioreq_t;

struct hammer2_ioreq {
	hammer2_ioreq_t	*next;
	void		(*run)(hammer2_ioreq_t *req);
};

void hammer2_iopool_submit(hammer2_ioreq_t *req);
int hammer2_iopool_is_worker(void);

#endif /* HAMMER2_IOPOOL_H_ */
