/*
 * nsutil.c - see nsutil.h.  A child enters the namespaces (unshare), forks
 * the grandchild that runs the function (the first process of a new PID
 * namespace must be a fork after unshare), reports the grandchild's pid or
 * the errno of a refusal through a pipe, and waits for it, passing its
 * status on.  The test waits for (or kills) the child, which stands for the
 * grandchild: killing it kills the grandchild too (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "l1arena.h"
#include "nsutil.h"
#include "testutil.h"

pid_t l1t_ns_spawn(int flags, const char *proc_opts, int (*fn)(void *), void *arg, char *why,
		   size_t len)
{
	int p[2];
	if (pipe(p) < 0) {
		snprintf(why, len, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t c = fork();
	if (c < 0) {
		snprintf(why, len, "fork: %s", strerror(errno));
		return -1;
	}
	if (c == 0) {
		int msg[1] = { 0 };     /* errno of a refusal */
		int uf = (flags & L1T_NS_PID ? CLONE_NEWPID : 0) |
			 (flags & L1T_NS_MOUNT_PROC ? CLONE_NEWNS : 0);
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (unshare(uf) < 0) {
			msg[0] = errno;
			(void)!write(p[1], msg, sizeof msg);
			_exit(99);
		}
		if ((flags & L1T_NS_MOUNT_PROC) &&
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			msg[0] = errno;
			(void)!write(p[1], msg, sizeof msg);
			_exit(99);
		}
		int q[2];
		if (pipe(q) < 0)
			_exit(98);
		pid_t g = fork();
		if (g == 0) {
			int e = 0;
			close(q[0]);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if ((flags & L1T_NS_MOUNT_PROC) &&
			    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
				  proc_opts) < 0)
				e = errno;
			(void)!write(q[1], &e, sizeof e);
			close(q[1]);
			if (e)
				_exit(99);
			_exit(fn(arg));
		}
		close(q[1]);
		if (g < 0 || read(q[0], &msg[0], sizeof msg[0]) != sizeof msg[0])
			msg[0] = g < 0 ? errno : EIO;
		(void)!write(p[1], msg, sizeof msg);
		close(p[1]);
		int st;
		while (waitpid(g, &st, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	close(p[1]);
	int msg[1] = { EIO };
	ssize_t n = read(p[0], msg, sizeof msg);
	close(p[0]);
	if (n != sizeof msg || msg[0]) {
		snprintf(why, len, "the kernel refused %s%s%s: %s",
			 flags & L1T_NS_PID ? "a PID namespace" : "",
			 (flags & L1T_NS_PID) && (flags & L1T_NS_MOUNT_PROC) ? " with " : "",
			 flags & L1T_NS_MOUNT_PROC ? "a private mount namespace and /proc" : "",
			 strerror(n == sizeof msg ? msg[0] : EIO));
		l1t_wait(c);
		return -1;
	}
	return c;
}

static int ns_writer_main(void *arg)
{
	struct l1t_ns_writer *w = arg;
	struct l1_arena *b;
	struct l1_obj mine, held;
	char go;
	close(w->ready[0]);
	close(w->go[1]);
	if (l1_arena_open(w->path, NULL, &b) || l1_alloc_bytes(b, 65536, 1, &mine))
		return 10;
	l1t_fill(mine.ptr, mine.size, w->own_seed);
	if (l1_hold_key(b, w->held_key, &held))
		return 11;
	if (write(w->ready[1], &mine.id, sizeof mine.id) != sizeof mine.id)
		return 12;
	if (read(w->go[0], &go, 1) != 1)
		return 13;
	if (!l1t_check(mine.ptr, mine.size, w->own_seed))
		return 14;      /* its own unpublished object was taken */
	if (!l1t_check(held.ptr, held.size, w->held_seed))
		return 15;      /* its held object was handed to someone else */
	_exit(0);               /* dies attached */
}

pid_t l1t_ns_writer_start(struct l1t_ns_writer *w, char *why, size_t len)
{
	ck_assert_int_eq(pipe(w->ready), 0);
	ck_assert_int_eq(pipe(w->go), 0);
	pid_t k = l1t_ns_spawn(L1T_NS_PID | L1T_NS_MOUNT_PROC, NULL, ns_writer_main, w, why, len);
	close(w->ready[1]);
	close(w->go[0]);
	if (k < 0) {
		close(w->ready[0]);
		close(w->go[1]);
		return -1;
	}
	ck_assert_int_eq(read(w->ready[0], &w->id, sizeof w->id), sizeof w->id);
	return k;
}

int l1t_ns_writer_finish(struct l1t_ns_writer *w, pid_t k)
{
	ck_assert_int_eq(write(w->go[1], "k", 1), 1);
	int st = l1t_wait(k);
	close(w->ready[0]);
	close(w->go[1]);
	return st;
}
