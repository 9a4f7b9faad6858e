/*
 * turn.c - fair turns for those who have waited long: a ticket queue in
 * the shared header (struct l1_queue: next, serving, turn_ms; atomics,
 * across processes).  The pool lock is a plain robust mutex and free memory
 * goes to whoever asks first: a thread that frees and allocates in a loop
 * takes the lock (and the memory its own engine just zeroed) again before a
 * sleeping waiter wakes, and a waiter can lose that race for seconds.  So a
 * thread that has waited longer than a threshold (its caller's) takes a
 * ticket; while the current turn is older than that threshold the queue is
 * starving, and newcomers take a ticket too instead of barging in.  Ticket
 * holders go in order: each when serving reaches its ticket, advancing
 * serving once it got what it waited for (or gave up).  While the queue
 * moves quickly, newcomers still barge (no convoy in normal operation).  A
 * turn nobody takes - its holder was killed, stopped, or gave up out of
 * order - is skipped by the next in line after L1_TURN_SKIP_NS, so no ticket
 * blocks the others for longer.  Waiting for a turn sleeps on the serving
 * word (futex, shared; with a timeout, so a lost wake-up costs a
 * millisecond).  Counters that claim more waiters than there can be are
 * damage (a hostile file): the queue is emptied.  Times are CLOCK_MONOTONIC_COARSE (a few ns to read, a few
 * ms fine): none is read unless a ticket is out.
 */
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* No pool has more threads waiting than this; a queue that says so is damaged. */
#define TURN_MAX_WAITERS 65536u

static uint32_t ms_of(uint64_t ns)
{
	return (uint32_t)(ns / 1000000);
}

static void turn_begins(struct l1_queue *q, uint64_t now)
{
	atomic_store_explicit(&q->turn_ms, ms_of(now), memory_order_release);
}

int l1__turn_starving(struct l1_queue *q, uint64_t starve_ns)
{
	uint32_t s = atomic_load_explicit(&q->serving, memory_order_acquire);
	uint32_t n = atomic_load_explicit(&q->next, memory_order_acquire);
	if (s == n)
		return 0;               /* the common case: no clock read */
	if (n - s > TURN_MAX_WAITERS) {
		/* more waiters than can be (or serving past next): damaged
		 * counters; everyone out is let go */
		atomic_compare_exchange_strong(&q->serving, &s, n);
		return 0;
	}
	uint32_t since = atomic_load_explicit(&q->turn_ms, memory_order_acquire);
	return (int32_t)(ms_of(l1__coarse_ns()) - since) >= (int32_t)(starve_ns / 1000000);
}

void l1__turn_take(struct l1_queue *q, struct l1_turn *t)
{
	if (t->have)
		return;
	uint64_t now = l1__coarse_ns();
	t->ticket = atomic_fetch_add(&q->next, 1);
	t->have = 1;
	t->seen = atomic_load(&q->serving);
	t->seen_ns = now;
	if (t->ticket == t->seen)
		turn_begins(q, now);    /* first in an empty queue: its turn now */
}

int l1__turn_mine(struct l1_queue *q, struct l1_turn *t)
{
	if (!t->have)
		return 1;
	uint64_t now = l1__coarse_ns();
	uint32_t s = atomic_load_explicit(&q->serving, memory_order_acquire);
	if (s != t->seen) {
		t->seen = s;
		t->seen_ns = now;
	}
	if ((int32_t)(t->ticket - s) <= 0)
		return 1;               /* my turn, or it was skipped: go */
	if (now - t->seen_ns > L1_TURN_SKIP_NS &&
	    atomic_compare_exchange_strong(&q->serving, &s, t->ticket)) {
		/* nobody ahead made progress for that long: skip them */
		turn_begins(q, now);
		return 1;
	}
	return 0;
}

void l1__turn_done(struct l1_queue *q, struct l1_turn *t)
{
	if (!t->have)
		return;
	uint64_t now = l1__coarse_ns();
	uint32_t mine = t->ticket;
	t->have = 0;
	if (atomic_compare_exchange_strong(&q->serving, &mine, mine + 1)) {
		turn_begins(q, now);
		syscall(SYS_futex, &q->serving, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	}
}

void l1__turn_wait(struct l1_queue *q, struct l1_turn *t, uint64_t max_ns)
{
	struct timespec ts = { 0, (long)(max_ns < 999999999 ? max_ns : 999999999) };
	syscall(SYS_futex, &q->serving, FUTEX_WAIT, t->seen, &ts, NULL, 0);
}
