/*
 * I/O worker pool (hammer2_iopool.h).  Process-wide and started on first
 * use; a forked child (test harnesses run hostile images in children)
 * starts afresh, since the parent's workers do not exist there.  The lock
 * is held across fork, so the child never inherits it from a worker.
 */
#include <pthread.h>
#include <stdlib.h>
#include "hammer2.h"
#include "hammer2_iopool.h"

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_room = PTHREAD_COND_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static hammer2_ioreq_t *head, *tail;
static int queued, started;
static __thread int is_worker;

static void *
worker(void *arg)
{
	(void)arg;
	is_worker = 1;
	for (;;) {
		hammer2_ioreq_t *req;

		pthread_mutex_lock(&pool_lock);
		while (head == NULL)
			pthread_cond_wait(&pool_work, &pool_lock);
		req = head;
		if ((head = req->next) == NULL)
			tail = NULL;
		--queued;
		pthread_cond_signal(&pool_room);
		pthread_mutex_unlock(&pool_lock);
		req->run(req);
	}
	return NULL;
}

/* The child has no workers, and the queue's requests are theirs. */
static void
pool_reset_child(void)
{
	pthread_cond_init(&pool_work, NULL);
	pthread_cond_init(&pool_room, NULL);
	head = tail = NULL;
	queued = started = 0;
}

static void
pool_atfork(void)
{
	hammer2_fork_guard(&pool_lock);
	pthread_atfork(NULL, NULL, pool_reset_child);
}

/* Start the workers (pool_lock held); 0 if none could be started. */
static int
pool_start(void)
{
	pthread_attr_t attr;
	pthread_t tid;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (int i = started; i < HAMMER2_IOPOOL_THREADS; ++i)
		if (pthread_create(&tid, &attr, worker, NULL) == 0)
			++started;
	pthread_attr_destroy(&attr);
	return started;
}

void
hammer2_iopool_submit(hammer2_ioreq_t *req)
{
	pthread_once(&pool_once, pool_atfork);
	pthread_mutex_lock(&pool_lock);
	if ((started == 0 && pool_start() == 0) ||
	    (queued >= HAMMER2_IOPOOL_DEPTH && is_worker)) {
		pthread_mutex_unlock(&pool_lock);
		req->run(req);		/* no workers, or a worker: inline */
		return;
	}
	while (queued >= HAMMER2_IOPOOL_DEPTH)
		pthread_cond_wait(&pool_room, &pool_lock);
	req->next = NULL;
	if (tail)
		tail->next = req;
	else
		head = req;
	tail = req;
	++queued;
	pthread_cond_signal(&pool_work);
	pthread_mutex_unlock(&pool_lock);
}

/* Whether this thread is one of the pool's workers. */
int
hammer2_iopool_is_worker(void)
{
	return is_worker;
}
