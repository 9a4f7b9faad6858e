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
 * lock_wait), nor for long on a live one: a wait gives up after the bound
 * (L1_LOCK_WAIT_MS, or $L1ARENA_LOCK_TIMEOUT_MS) with -ETIMEDOUT and a
 * sentence naming the holder.  The holder writes its pid, thread and the
 * time into the header (lock_pid, ...) right after taking the lock and
 * clears them before letting go; waiters read them without the lock, and
 * /proc tells whether that thread runs, is stopped or is gone.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SPIN_TRIES 64
#define L1_LOCK_STARVE_NS 2000000ull       /* a lock wait this long queues (turn.c) */

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

/* Waiting for the mutex: first as anyone (timedlock, a short step), then,
 * past L1_LOCK_STARVE_NS or when others already queue, in turn (turn.c), so
 * threads that lock in a tight loop cannot keep it from a sleeper.  Never
 * for good: the robust futex protocol can lose a wake-up (an unlock wakes
 * one waiter; if that waiter is killed before it takes the mutex, a third
 * process that took it meanwhile without the waiters bit then unlocks, or
 * dies, without waking anyone; check_kill saw it), so each sleep is a
 * timedlock of at most 100 ms; and never past the deadline.  (timedlock and
 * its realtime clock rather than clocklock: ThreadSanitizer knows the
 * former; a clock step only shortens or lengthens one period.) */
static int lock_wait(struct l1_arena *a, uint64_t deadline)
{
	pthread_mutex_t *m = mutex_of(a->h);
	struct l1_queue *q = &a->h->lock_queue;
	struct l1_turn t = { 0 };
	uint64_t start = l1__mono_ns();
	int r;
	for (;;) {
		uint64_t now = l1__mono_ns();
		if (now >= deadline) {
			r = ETIMEDOUT;
			break;
		}
		if (!t.have && (now - start >= L1_LOCK_STARVE_NS ||
				l1__turn_starving(q, L1_LOCK_STARVE_NS)))
			l1__turn_take(q, &t);
		if (!l1__turn_mine(q, &t)) {
			l1__turn_wait(q, &t, deadline - now < 1000000 ? deadline - now : 1000000);
			continue;
		}
		uint64_t step = t.have ? 100000000 : L1_LOCK_STARVE_NS;
		if (step > deadline - now)
			step = deadline - now;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)step;
		while (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		r = pthread_mutex_timedlock(m, &ts);
		if (r != ETIMEDOUT)
			break;
	}
	l1__turn_done(q, &t);
	return r;
}

uint64_t l1__lock_bound_ms(void)
{
	static _Atomic uint64_t bound;
	uint64_t b = atomic_load_explicit(&bound, memory_order_relaxed);
	if (b)
		return b;
	b = L1_LOCK_WAIT_MS;
	const char *e = getenv("L1ARENA_LOCK_TIMEOUT_MS");
	if (e && *e) {
		char *end;
		unsigned long long v = strtoull(e, &end, 10);
		if (!*end && v > 0 && v <= 3600000)
			b = v;
	}
	atomic_store_explicit(&bound, b, memory_order_relaxed);
	return b;
}

/* This thread's id, cached per thread (and per process: a child of fork
 * inherits the cache of the thread that forked). */
static int32_t my_tid(int32_t pid)
{
	static __thread int32_t tid, tid_pid;
	if (!tid || tid_pid != pid) {
		tid = (int32_t)syscall(SYS_gettid);
		tid_pid = pid;
	}
	return tid;
}

/* The thread that owns the mutex, from its futex word (a robust mutex keeps
 * the owner's thread id there: glibc's __lock, FUTEX_TID_MASK); 0 if free. */
static int32_t mutex_owner_tid(struct l1_hdr *h)
{
	return (int32_t)((uint32_t)__atomic_load_n(&mutex_of(h)->__data.__lock, __ATOMIC_RELAXED) &
			 FUTEX_TID_MASK);
}

/* The process a thread belongs to (/proc/TID/status, Tgid), or the thread
 * id itself when /proc does not say. */
static int32_t tgid_of(int32_t tid)
{
	char path[64], line[128];
	int32_t pid = tid;
	snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return pid;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "Tgid:", 5)) {
			pid = (int32_t)strtol(line + 5, NULL, 10);
			break;
		}
	fclose(f);
	return pid;
}

/* What /proc says about a thread: "running", "stopped", "dead", ... */
static const char *thread_state(int32_t pid, int32_t tid, uint64_t start)
{
	char path[96], buf[512];
	uint64_t s;
	if (pid <= 0)
		return "unknown";
	if (l1__proc_start(pid, &s) < 0)
		return "dead";
	if (start && s != start)
		return "dead (its pid is reused)";
	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)(tid ? tid : pid));
	FILE *f = fopen(path, "r");
	if (!f)
		return "dead";
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	switch (p && p[1] == ' ' ? p[2] : '?') {
	case 'R': return "running";
	case 'S': return "sleeping";
	case 'D': return "in uninterruptible wait";
	case 'T': return "stopped";
	case 't': return "stopped by a debugger";
	case 'Z': case 'X': return "dead";
	default: return "unknown";
	}
}

int l1__lock_holder(struct l1_arena *a, int32_t *pid, int32_t *tid, const char **state,
		    uint64_t *held_ns)
{
	struct l1_hdr *h = a->h;
	*pid = (int32_t)atomic_load(&h->lock_pid);
	*tid = (int32_t)atomic_load(&h->lock_tid);
	uint64_t start = atomic_load(&h->lock_start);
	uint64_t since = atomic_load(&h->lock_since_ns);
	uint64_t now = l1__coarse_ns();
	*held_ns = *pid && since && now > since ? now - since : 0;
	if (!*pid && (*tid = mutex_owner_tid(h)) > 0) {
		/* stopped or killed between taking the mutex and saying so (or
		 * between saying it let go and letting go): the mutex knows */
		*pid = tgid_of(*tid);
		start = 0;
	}
	*state = *pid ? thread_state(*pid, *tid, start) : "none";
	return *pid != 0;
}

/* The error for a wait that gave up: who holds the lock, and how it is. */
static int lock_timeout(struct l1_arena *a, uint64_t waited_ms)
{
	int32_t pid, tid;
	const char *state;
	uint64_t held;
	char who[160];
	atomic_fetch_add(&a->h->lock_timeouts, 1);
	if (!l1__lock_holder(a, &pid, &tid, &state, &held))
		return l1__err(-ETIMEDOUT, "the pool lock stayed busy for %llu ms (it changed "
			       "hands meanwhile); try again", (unsigned long long)waited_ms);
	l1__lock_describe(pid, tid, state, held, who, sizeof who);
	return l1__err(-ETIMEDOUT, "the pool lock is %s; gave up after %llu ms%s", who,
		       (unsigned long long)waited_ms,
		       !strncmp(state, "stopped", 7) ? ": resume it (kill -CONT) or end it"
						     : "; try again");
}

void l1__lock_describe(int32_t pid, int32_t tid, const char *state, uint64_t held_ns,
		       char *buf, size_t len)
{
	if (!pid) {
		snprintf(buf, len, "free");
		return;
	}
	int n = snprintf(buf, len, "held by pid %d (thread %d, %s)", (int)pid, (int)tid, state);
	if (held_ns && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " for %.1f s", (double)held_ns / 1e9);
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

int l1__lock_within(struct l1_arena *a, uint64_t bound_ms)
{
	if (a->readonly)        /* the mapping is read-only: the mutex cannot be taken */
		return l1__err(-EROFS, "pool attached read-only: this call needs the pool "
			       "lock (attach read-write)");
	/* critical sections are a few microseconds: spin a little before
	 * sleeping in the kernel, which costs more than the wait itself */
	int r = EBUSY;
	int starving = l1__turn_starving(&a->h->lock_queue, L1_LOCK_STARVE_NS);
	for (int i = 0; i < SPIN_TRIES && r == EBUSY && !starving; i++) {
		r = pthread_mutex_trylock(mutex_of(a->h));
		if (r == EBUSY)
			spin_pause(i);
	}
	if (r == EBUSY)
		r = lock_wait(a, l1__mono_ns() + bound_ms * 1000000ull);
	if (r == ETIMEDOUT)
		return lock_timeout(a, bound_ms);
	if (r == 0 || r == EOWNERDEAD) {
		struct l1_hdr *h = a->h;
		atomic_store_explicit(&h->lock_pid, (uint64_t)a->pid, memory_order_relaxed);
		atomic_store_explicit(&h->lock_tid, (uint64_t)my_tid(a->pid), memory_order_relaxed);
		atomic_store_explicit(&h->lock_start, a->start, memory_order_relaxed);
		atomic_store_explicit(&h->lock_since_ns, l1__coarse_ns(), memory_order_relaxed);
	}
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

int l1__lock(struct l1_arena *a)
{
	return l1__lock_within(a, l1__lock_bound_ms());
}

void l1__unlock(struct l1_arena *a)
{
	atomic_store_explicit(&a->h->lock_pid, 0, memory_order_relaxed);
	pthread_mutex_unlock(mutex_of(a->h));
}
