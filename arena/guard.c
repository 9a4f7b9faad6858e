/*
 * guard.c - who may call what on a handle.  Three checks, each a sentence in
 * l1_last_error() when it refuses: (1) a handle belongs to the process that
 * opened it: after fork() the child's copy is refused by every call (-EBADF),
 * because the zeroing engine thread, the client slot and the holds are the
 * parent's; the test is one load (l1__fork_gen, which a pthread_atfork child
 * handler bumps in the child: the only global the library keeps besides the
 * per-thread error sentence), confirmed with getpid(); (2) a read-only handle
 * (file opened O_RDONLY, mapped PROT_READ) refuses every call that writes the
 * pool (-EPERM); (3) the owner and mode of a record: freeing, publishing or
 * changing an object needs its uid (or root), and looking it up, getting or
 * holding it needs read permission by its uid/gid/mode, as for a file.  The
 * third is a check against accidents, not a wall: whoever can open the pool
 * file read-write can write every byte of it (README, "Trust").
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "internal.h"

_Atomic uint32_t l1__fork_gen;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void in_child(void)
{
	atomic_fetch_add_explicit(&l1__fork_gen, 1, memory_order_relaxed);
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, in_child);
}

void l1__guard_init(struct l1_arena *a)
{
	pthread_once(&atfork_once, register_atfork);
	a->fork_gen = atomic_load(&l1__fork_gen);
	a->pid = getpid();
	a->uid = geteuid();
	a->gid = getegid();
	gid_t g[32];
	int n = getgroups(32, g);
	a->ngroups = n > 0 ? (uint32_t)n : 0;
	for (uint32_t i = 0; i < a->ngroups; i++)
		a->groups[i] = (uint32_t)g[i];
}

int l1__handle_bad(const struct l1_arena *a)
{
	if (!a)
		return l1__err(-EINVAL, "NULL pool");
	int32_t me = getpid();
	if (a->pid == me)       /* not a fork child (the counter moved for another reason) */
		return 0;
	return l1__err(-EBADF, "this pool handle was opened by process %d and inherited "
		       "across fork by process %d: a child must open its own handle "
		       "(l1_arena_open); on an inherited one only l1_arena_close (which unmaps "
		       "the child's copy) and l1_arena_path are allowed",
		       (int)a->pid, (int)me);
}

int l1__writable(const struct l1_arena *a, const char *what)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (a->readonly)
		return l1__err(-EPERM, "cannot %s: this handle is read-only (the pool file is "
			       "open O_RDONLY and mapped PROT_READ); attach read-write to "
			       "change the pool", what);
	return 0;
}

int l1__may_modify(const struct l1_arena *a, const struct l1_rec *r)
{
	return a->uid == 0 || r->uid == a->uid;
}

static int in_group(const struct l1_arena *a, uint32_t gid)
{
	if (a->gid == gid)
		return 1;
	for (uint32_t i = 0; i < a->ngroups; i++)
		if (a->groups[i] == gid)
			return 1;
	return 0;
}

int l1__may_read(const struct l1_arena *a, const struct l1_rec *r)
{
	if (a->uid == 0)
		return 1;
	if (r->uid == a->uid)
		return (r->mode & 0400) != 0;
	if (in_group(a, r->gid))
		return (r->mode & 0040) != 0;
	return (r->mode & 0004) != 0;
}
