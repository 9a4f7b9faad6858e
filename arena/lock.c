/*
 * lock.c - the pool's one lock: a robust, process-shared pthread mutex in
 * the header.  It guards the bitmap, the records' non-atomic fields, the
 * slot stack, the key index, the hold entries, the layout table, the
 * client table, the dirty-extent table and (per process) the popping end of
 * the finished ring, which every locker of this process empties first
 * (release.c).  Recovery story: a process killed while holding it leaves
 * EOWNERDEAD to the next locker, which rebuilds all derived state from the
 * records and dirty extents (repair.c), takes over the dirty extents whose
 * zeroer is dead or stalled (gc.c; liveness is client.c's), counts a
 * repair, marks the mutex consistent and goes on; the dead process's
 * unpublished objects are then reclaimed by gc.  No
 * locker ever waits on a dead process (not even after a lost wake-up: see
 * lock_wait).
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define SPIN_TRIES 64

static void spin_pause(int i)
{
	for (int k = 0; k < 8 << (i < 4 ? i : 4); k++) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ volatile("yield");
#else
		__asm__ volatile("" ::: "memory");
#endif
	}
}

static pthread_mutex_t *mutex_of(struct l1_hdr *h)
{
	return (pthread_mutex_t *)(void *)h->lock;
}

/* Sleeps for the mutex, but never for good.  The robust futex protocol can
 * lose a wake-up: an unlock wakes one waiter; if that waiter is killed
 * before it takes the mutex, the kernel passes the wake-up on only if the
 * mutex is still free; a third process that took it meanwhile (without the
 * waiters bit, as a first try does) then unlocks, or dies, without waking
 * anyone, and the sleeper would wait forever on a free or dead-owner mutex
 * (check_kill saw it).  Looking again every 100 ms bounds that.  (timedlock
 * and its realtime clock rather than clocklock: ThreadSanitizer knows the
 * former; a clock step only shortens or lengthens one period.) */
static int lock_wait(pthread_mutex_t *m)
{
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		int r = pthread_mutex_timedlock(m, &ts);
		if (r != ETIMEDOUT)
			return r;
	}
}

int l1__lock_init(struct l1_hdr *h)
{
	pthread_mutexattr_t at;
	int r = pthread_mutexattr_init(&at);
	if (r)
		return -r;
	r = pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	if (!r)
		r = pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	if (!r)
		r = pthread_mutex_init(mutex_of(h), &at);
	pthread_mutexattr_destroy(&at);
	return -r;
}

int l1__lock(struct l1_arena *a)
{
	if (a->readonly)        /* the mapping is read-only: the mutex cannot be taken */
		return l1__err(-EROFS, "pool attached read-only: this call needs the pool "
			       "lock (attach read-write)");
	/* critical sections are a few microseconds: spin a little before
	 * sleeping in the kernel, which costs more than the wait itself */
	int r = EBUSY;
	for (int i = 0; i < SPIN_TRIES && r == EBUSY; i++) {
		r = pthread_mutex_trylock(mutex_of(a->h));
		if (r == EBUSY)
			spin_pause(i);
	}
	if (r == EBUSY)
		r = lock_wait(mutex_of(a->h));
	if (r == EOWNERDEAD) {
		l1__rebuild(a);
		l1__requeue_orphans(a);
		atomic_fetch_add(&a->h->repairs, 1);
		pthread_mutex_consistent(mutex_of(a->h));
		r = 0;
	}
	if (r == 0) {
		/* zeroed extents of this process's engine: released by whoever
		 * locks next (release.c), here, on lines this thread owns */
		atomic_store_explicit(&a->lock_seq,
				      atomic_load_explicit(&a->lock_seq, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		if (a->fin)
			l1__fin_release(a);
		return 0;
	}
	return l1__err(-EIO, "pool lock unusable (%s): run `l1ctl memcheck --repair`",
		       strerror(r));
}

void l1__unlock(struct l1_arena *a)
{
	pthread_mutex_unlock(mutex_of(a->h));
}
