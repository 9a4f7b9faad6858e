/*
 * testutil.c - see testutil.h.  State: a per-process path buffer; the pid
 * of the suite runner (l1t_run_suite), which forks one child per test; and
 * the runner's progress thread, which reads Check's log through a pipe.
 * Pool files live in a directory of their own per test program and are
 * named <name>-<test pid>-<pid>-<seq>, where <test pid> is the Check child
 * that runs the test: a test that fails (Check's child _exits, skipping
 * any cleanup) or dies leaves its pools behind, and the next test's first
 * l1t_path removes the pools of every test process that is gone, so one
 * failure never eats the huge pages the following tests need.  The runner
 * removes the directory at the end.
 */
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char path_buf[512];
static unsigned path_seq;
static pid_t runner_pid;        /* l1t_run_suite's process; 0 outside it */
static pid_t swept_in;          /* the test process that swept already */

const char *l1t_shm_dir(void)
{
	const char *d = getenv("L1_TEST_SHM_DIR");      /* tests/run.sh's, per run */
	if (d && *d)
		return d;
	static char shm[64];
	snprintf(shm, sizeof shm, "/dev/shm/l1test-%d", (int)getuid());
	/* searchable by all: tests that drop to user nobody open pools here
	 * (each pool file keeps its own mode) */
	mkdir(shm, 0755);
	chmod(shm, 0755);
	return shm;
}

static const char *test_dir(void)
{
	const char *d = getenv("L1_TEST_DIR");
	if (d && *d)
		return d;
	return l1t_shm_dir();
}

int l1t_on_hugetlbfs(void)
{
	const char *h = getenv("L1_TEST_HUGETLBFS");
	return h && *h == '1';
}

char l1t_proc_stat(pid_t pid, pid_t *ppid)
{
	char p[64], buf[512];
	char state = 0;
	int pp = 0;
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(p, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		buf[n] = 0;
		fclose(f);
		char *e = strrchr(buf, ')');    /* the name may hold spaces */
		if (!e || sscanf(e + 1, " %c %d", &state, &pp) != 2)
			state = 0, pp = 0;
	}
	if (ppid)
		*ppid = pp;
	return state;
}

static pid_t parent_of(pid_t pid)
{
	pid_t pp;
	l1t_proc_stat(pid, &pp);
	return pp;
}

/* The Check child running the current test: this process or the ancestor
 * whose parent is the runner; this process when there is no runner. */
static pid_t test_pid(void)
{
	pid_t p = getpid();
	if (!runner_pid || p == runner_pid)
		return p;
	for (pid_t q = p; q > 1; q = parent_of(q))
		if (parent_of(q) == runner_pid)
			return q;
	return p;
}

/* Removes the pools that earlier tests of this program left (see above). */
static void sweep_dead_tests(pid_t me)
{
	DIR *d = opendir(test_dir());
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char name[256];
		int owner = 0, pid = 0;
		unsigned seq;
		const char *dash = e->d_name;
		/* <name>-<test pid>-<pid>-<seq>: the name may hold dashes */
		for (const char *c = e->d_name; (c = strchr(c, '-')); c++)
			if (sscanf(c, "-%d-%d-%u", &owner, &pid, &seq) == 3)
				dash = c;
		if (dash == e->d_name || sscanf(dash, "-%d-%d-%u", &owner, &pid, &seq) != 3 ||
		    owner == me || owner <= 1 || (kill(owner, 0) == 0 || errno != ESRCH))
			continue;
		snprintf(name, sizeof name, "%.200s", e->d_name);
		char p[512];
		snprintf(p, sizeof p, "%s/%s", test_dir(), name);
		if (unlink(p) == 0)
			fprintf(stderr, "testutil: removed %s, left by an earlier test that "
				"failed or died\n", p);
	}
	closedir(d);
}

const char *l1t_path(const char *name)
{
	pid_t t = test_pid();
	if (runner_pid && t != runner_pid && getpid() == t && swept_in != t) {
		swept_in = t;
		sweep_dead_tests(t);
	}
	snprintf(path_buf, sizeof path_buf, "%s/%s-%d-%d-%u", test_dir(), name, (int)t,
		 (int)getpid(), path_seq++);
	unlink(path_buf);
	return path_buf;
}

void l1t_config(struct l1_config *c, const char *name, uint64_t size)
{
	l1_config_init(c);
	c->path = l1t_path(name);
	c->size_bytes = size;
	c->lazy = 0;
	c->pin = L1_PIN_OFF;
	c->allow_shm = !l1t_on_hugetlbfs();
	if (size < (64ull << 20))
		c->grow_step_bytes = size;
}

struct l1_arena *l1t_create(const char *name, uint64_t size)
{
	struct l1_config c;
	struct l1_arena *a = NULL;
	l1t_config(&c, name, size);
	int r = l1_arena_create(&c, &a);
	ck_assert_msg(r == 0, "create %s: %s: %s", c.path, l1_strerror(r),
		      l1_last_error());
	return a;
}

void l1t_destroy(struct l1_arena *a)
{
	char p[512];
	if (!a)
		return;
	snprintf(p, sizeof p, "%s", l1_arena_path(a));
	l1_arena_close(a);
	l1_arena_destroy(p, 1);
}

void l1t_layout_bytes(struct l1_layout *l, uint64_t n)
{
	memset(l, 0, sizeof *l);
	l->ntensors = 1;
	l->t[0].dtype = L1_DTYPE_UINT8;
	l->t[0].ndim = 1;
	l->t[0].shape[0] = n;
}

int l1t_wait(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

void l1t_fill(void *p, uint64_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = mix(seed + i) | 1;
}

int l1t_check(const void *p, uint64_t len, uint64_t seed)
{
	const uint64_t *w = p;
	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i] != (mix(seed + i) | 1))
			return 0;
	return 1;
}

int l1t_is_filled(const void *p, uint64_t len, unsigned char v)
{
	const unsigned char *b = p;
	for (uint64_t i = 0; i < len; i++)
		if (b[i] != v)
			return 0;
	return 1;
}

int l1t_is_zero(const void *p, uint64_t len)
{
	return l1t_is_filled(p, len, 0);
}

void l1t_memcheck_clean(struct l1_arena *a)
{
	char rep[4096];
	int r = l1_arena_memcheck(a, 0, rep, sizeof rep);
	ck_assert_msg(r == 0, "memcheck found %d problem(s): %s", r, rep);
}

void l1t_seen_dead(struct l1_arena *a, pid_t pid)
{
	static struct l1_client_info c[64];
	for (int tries = 0; tries < 2000; tries++) {
		int n = l1_arena_clients(a, c, 64), alive = 0;
		ck_assert_msg(n >= 0, "l1_arena_clients: %d %s", n, l1_last_error());
		for (int i = 0; i < n && i < 64; i++)
			alive |= c[i].pid == pid && c[i].alive;
		if (!alive)
			return;
		usleep(10000);
	}
	ck_abort_msg("pid %d was reaped but still holds its client lock after 20 s", (int)pid);
}

void l1t_gc_dead(struct l1_arena *a, uint64_t clients, struct l1_gc_result *sum)
{
	struct l1_gc_result g;
	memset(sum, 0, sizeof *sum);
	for (int i = 0; i < 2000 && (i == 0 || sum->clients_dropped < clients); i++) {
		if (i)
			usleep(10000);
		ck_assert_msg(l1_arena_gc(a, &g) == 0, "gc: %s", l1_last_error());
		sum->objects_reclaimed += g.objects_reclaimed;
		sum->dirty_requeued += g.dirty_requeued;
		sum->holds_dropped += g.holds_dropped;
		sum->clients_dropped += g.clients_dropped;
		sum->bytes_reclaimed += g.bytes_reclaimed;
	}
	ck_assert_msg(sum->clients_dropped == clients, "gc dropped %llu dead clients, not %llu, "
		      "in 20 s", (unsigned long long)sum->clients_dropped,
		      (unsigned long long)clients);
}

/* The runner's progress reader, a child process (so that the runner stays
 * single-threaded when Check forks a test: ThreadSanitizer and fork-safety
 * both want that): reads the lines Check logs as each test ends and, every
 * 10 s while the program runs, says how far it is, so that a long suite is
 * never silent (Check prints its results only at the end).  It stops at
 * SIGTERM from the runner. */
static volatile sig_atomic_t progress_stop;

static void progress_on_term(int sig)
{
	(void)sig;
	progress_stop = 1;
}

static void progress_main(int fd, const char *prog)
{
	char buf[4096], last[160] = "";
	size_t have = 0;
	unsigned done = 0, failed = 0;
	time_t t0 = time(NULL), next = t0 + 10;
	signal(SIGTERM, progress_on_term);
	while (!progress_stop) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 250) > 0) {
			ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			buf[have] = 0;
			char *line = buf, *nl;
			while ((nl = strchr(line, '\n'))) {
				*nl = 0;
				/* file:line:P|F|E:tcase:test:iteration: message */
				char r = 0, tc[64] = "", tn[64] = "";
				const char *c = strchr(line, ':');
				if (c && (c = strchr(c + 1, ':')) &&
				    sscanf(c + 1, "%c:%63[^:]:%63[^:]", &r, tc, tn) == 3 &&
				    (r == 'P' || r == 'F' || r == 'E')) {
					done++;
					failed += r != 'P';
					snprintf(last, sizeof last, "%s/%s", tc, tn);
				}
				line = nl + 1;
			}
			have = strlen(line);
			memmove(buf, line, have + 1);
			if (have == sizeof buf - 1)
				have = 0;               /* a line too long to matter */
		}
		time_t now = time(NULL);
		if (now >= next) {
			printf("%s: %lld s: %u tests done (%u failed)%s%s\n", prog,
			       (long long)(now - t0), done, failed, *last ? ", last " : "", last);
			fflush(stdout);
			next = now + 10;
		}
	}
}

/* The directory this program's pools go to: a fresh one per run of the
 * program under the run's pool directory; removed at the end. */
static char prog_dir[400];

static void prog_dir_remove(void)
{
	DIR *d = opendir(prog_dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char p[700];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", prog_dir, e->d_name);
		if (unlink(p) == 0)
			fprintf(stderr, "testutil: removed %s, left by a test\n", p);
	}
	closedir(d);
	rmdir(prog_dir);
}

int l1t_run_suite(Suite *s)
{
	runner_pid = getpid();
	snprintf(prog_dir, sizeof prog_dir, "%s/%s-%d", test_dir(),
		 program_invocation_short_name, (int)runner_pid);
	if (mkdir(prog_dir, 0755) == 0)
		setenv("L1_TEST_DIR", prog_dir, 1);
	else
		prog_dir[0] = 0;
	SRunner *sr = srunner_create(s);
	int pfd[2] = { -1, -1 };
	pid_t reader = -1;
	char logname[64];
	fflush(stdout);
	fflush(stderr);
	if (!getenv("CK_LOG_FILE_NAME") && pipe(pfd) == 0) {
		reader = fork();
		if (reader == 0) {
			close(pfd[1]);
			progress_main(pfd[0], program_invocation_short_name);
			_exit(0);
		}
		close(pfd[0]);
		/* only with a reader: a full pipe would block Check */
		if (reader > 0) {
			snprintf(logname, sizeof logname, "/proc/self/fd/%d", pfd[1]);
			srunner_set_log(sr, logname);
		}
	}
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (reader > 0) {
		kill(reader, SIGTERM);
		l1t_wait(reader);
	}
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (prog_dir[0])
		prog_dir_remove();
	return failed ? 1 : 0;
}
