/*
 * Process-wide locks held across fork.  A child inherits every mutex as
 * it was at the fork, and one held then by another thread stays held in
 * the child, where that thread does not exist.  Guarded locks are taken
 * before a fork (in the order they were guarded) and released after it
 * in parent and child.
 */
#include <pthread.h>
#include <stdlib.h>
#include "hammer2.h"

#define FORK_LOCKS_MAX	8

static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t *locks[FORK_LOCKS_MAX];
static int nlocks;

static void
fork_prepare(void)
{
	pthread_mutex_lock(&guard_lock);
	for (int i = 0; i < nlocks; ++i)
		pthread_mutex_lock(locks[i]);
}

static void
fork_done(void)
{
	for (int i = nlocks - 1; i >= 0; --i)
		pthread_mutex_unlock(locks[i]);
	pthread_mutex_unlock(&guard_lock);
}

static void
fork_handlers(void)
{
	pthread_atfork(fork_prepare, fork_done, fork_done);
}

/*
 * A lock is guarded once however often this is called (a child forked
 * during its owner's one-time setup runs that setup again).
 */
void
hammer2_fork_guard(pthread_mutex_t *lock)
{
	int i;

	pthread_once(&guard_once, fork_handlers);
	pthread_mutex_lock(&guard_lock);
	for (i = 0; i < nlocks && locks[i] != lock; ++i)
		;
	if (i == nlocks) {
		if (nlocks == FORK_LOCKS_MAX)
			abort();	/* a new process-wide lock: raise the max */
		locks[nlocks++] = lock;
	}
	pthread_mutex_unlock(&guard_lock);
}
