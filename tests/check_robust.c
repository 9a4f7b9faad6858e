/*
 * check_robust.c - a pool that survives its operators, stopped clients and
 * full machines.  create: killed hundreds of times part-way, the next create
 * always succeeds and no half-made file is ever taken for a pool; --force
 * refuses while clients live unless given twice, and keeps the old pool when
 * the new one does not fit.  growth: a growth that fails at a hugetlbfs
 * quota gives back every page it got (pages counted on the mount before and
 * after), and allocate reuses a dead writer's objects before growing.
 * stall: a client stopped (SIGSTOP) inside the pool lock makes the others'
 * calls fail within the bound with an error naming it, `l1ctl info` and `cat
 * MOUNT/stats` still answer and name it, and everything works once it goes
 * on; a busy client (zeroing on) stopped at random moments: the others'
 * calls return in time or name it, its dirty memory but what its engine was
 * writing is zeroed and reused by another process, and after SIGCONT no
 * byte of the others' objects changes and nothing was released twice.  close: a handle's close retires every doomed object it held (more
 * than 64), without a gc.  repair: a lock holder killed with freed extents
 * queued has them zeroed by the repairer's engine without a gc, also when
 * the repair happens inside attach.  hostile: gc never zeroes a live
 * object's block that a damaged dirty extent shares with it, first or last;
 * damaged turn queues (turn.c) are emptied, not waited on.
 * Lock waits are bounded at 1 s here ($L1ARENA_LOCK_TIMEOUT_MS).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mntent.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define MiB (1ull << 20)
#define BLK 4096ull
#define BOUND_MS "1000"
#define HANG_GUARD_NS (30ull * 1000000000ull)   /* "returned at all", not a timing */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
	nanosleep(&ts, NULL);
}

static const char *bin(const char *name)
{
	static char buf[512];
	const char *b = getenv("BUILD");
	snprintf(buf, sizeof buf, "%s/bin/%s", b && *b ? b : "build", name);
	return buf;
}

/* Runs argv, its stdout and stderr into out; the exit status. */
static int run_capture(char *out, size_t len, char *const argv[])
{
	int fd[2];
	ck_assert_int_eq(pipe(fd), 0);
	pid_t p = fork();
	if (p == 0) {
		dup2(fd[1], 1);
		dup2(fd[1], 2);
		close(fd[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	size_t n = 0;
	ssize_t k;
	while (n + 1 < len && (k = read(fd[0], out + n, len - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = 0;
	close(fd[0]);
	return l1t_wait(p);
}

/* What a test mounts is named /tmp/l1robust-WHAT.RUNNERPID.XXXXXX, so that
 * the tcases' teardown, in the Check runner (which outlives a test that
 * failed half-way), finds and detaches it; children the tests start die
 * with the test (PR_SET_PDEATHSIG: a stopped one too; l1fs unmounts itself
 * on SIGTERM). */
static void mount_point(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "/tmp/l1robust-%s.%d.XXXXXX", what, (int)getppid());
	ck_assert_ptr_nonnull(mkdtemp(buf));
}

static void sweep_mounts(void)
{
	char tag[32];
	struct mntent *m;
	snprintf(tag, sizeof tag, ".%d.", (int)getpid());
	FILE *f = setmntent("/proc/mounts", "r");
	while (f && (m = getmntent(f)))
		if (!strncmp(m->mnt_dir, "/tmp/l1robust-", 14) && strstr(m->mnt_dir, tag) &&
		    umount2(m->mnt_dir, MNT_DETACH) == 0)
			rmdir(m->mnt_dir);
	if (f)
		endmntent(f);
}

static void die_with_parent(int sig)
{
	prctl(PR_SET_PDEATHSIG, sig);
}

static struct l1_arena *open_pool(const char *path, int no_client)
{
	struct l1_open_opts o;
	struct l1_arena *a = NULL;
	l1_open_opts_init(&o);
	o.pin = L1_PIN_OFF;
	o.no_client = no_client;
	int r = l1_arena_open(path, &o, &a);
	ck_assert_msg(r == 0, "open %s: %s", path, l1_last_error());
	return a;
}

/* ---- create ------------------------------------------------------------ */

/* Temporary files of creates of path (DIR/.BASE.l1new.*). */
static int count_temps(const char *path)
{
	char dir[512], prefix[300];
	const char *base = strrchr(path, '/');
	snprintf(dir, sizeof dir, "%.*s", (int)(base - path), path);
	snprintf(prefix, sizeof prefix, ".%s.l1new.", base + 1);
	DIR *d = opendir(dir);
	int n = 0;
	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d));)
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

START_TEST(kill_during_create)
{
	char path[512];
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, "kcreate", 4 * MiB);
	snprintf(path, sizeof path, "%s", c.path);
	c.path = path;
	uint64_t t0 = mono_ns();
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	uint64_t dt = mono_ns() - t0;
	l1_arena_close(a);
	ck_assert_int_eq(unlink(path), 0);
	if (dt < 300000)
		dt = 300000;
	unsigned seed = (unsigned)getpid();
	int whole = 0, none = 0, temps = 0, i;
	uint64_t end = mono_ns() + 90ull * 1000000000ull;
	for (i = 0; i < 300 && mono_ns() < end; i++) {
		pid_t p = fork();
		if (p == 0) {
			struct l1_arena *x;
			_exit(l1_arena_create(&c, &x) ? 1 : 0);
		}
		ck_assert_int_gt(p, 0);
		sleep_ns((uint64_t)rand_r(&seed) % (2 * dt));
		kill(p, SIGKILL);
		int st = l1t_wait(p);
		ck_assert_msg(st == 0 || st == 128 + SIGKILL, "kill %d: the create failed (%d)", i,
			      st);
		temps += count_temps(path) > 0;
		struct stat sb;
		if (stat(path, &sb) == 0) {
			/* whatever is at the path is a whole pool */
			struct l1_open_opts o;
			l1_open_opts_init(&o);
			o.readonly = 1;
			int r = l1_arena_open(path, &o, &a);
			ck_assert_msg(r == 0, "kill %d left a file at %s that is not a pool: %s", i,
				      path, l1_last_error());
			l1_arena_close(a);
			ck_assert_int_eq(unlink(path), 0);
			whole++;
		} else {
			none++;
		}
		if (i % 10 == 9) {      /* the next create always succeeds, and cleans up */
			int r = l1_arena_create(&c, &a);
			ck_assert_msg(r == 0, "create after kill %d: %s", i, l1_last_error());
			ck_assert_int_eq(count_temps(path), 0);
			l1_arena_close(a);
			ck_assert_int_eq(unlink(path), 0);
		}
	}
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	ck_assert_int_eq(count_temps(path), 0);
	l1t_destroy(a);
	ck_assert_int_ge(i, 100);
	printf("kill during create: %d kills: %d whole pools, %d nothing at the path; "
	       "%d left a temporary file, each removed by the next create\n",
	       i, whole, none, temps);
}
END_TEST

START_TEST(force_needs_twice_while_attached)
{
	struct l1_arena *a = l1t_create("force2", 4 * MiB), *b;
	char path[512], msg[512];
	struct l1_obj o;
	snprintf(path, sizeof path, "%s", l1_arena_path(a));
	ck_assert_int_eq(l1_alloc_bytes(a, BLK, 1, &o), 0);
	ck_assert_int_eq(l1_publish(a, o.id, "old"), 0);
	struct l1_config c;
	l1t_config(&c, "force2", 4 * MiB);
	c.path = path;
	c.force = 1;
	ck_assert_int_eq(l1_arena_create(&c, &b), -EBUSY);
	snprintf(msg, sizeof msg, "%s", l1_last_error());
	char pid[32];
	snprintf(pid, sizeof pid, "pid %d", (int)getpid());
	ck_assert_msg(strstr(msg, pid) && strstr(msg, "twice"), "message: %s", msg);
	struct l1_arena *again = open_pool(path, 1);    /* the old pool is still there */
	ck_assert_int_eq(l1_lookup(again, "old", &o), 0);
	l1_arena_close(again);
	c.force = 2;
	ck_assert_int_eq(l1_arena_create(&c, &b), 0);
	ck_assert_int_eq(l1_lookup(b, "old", &o), -ENOENT);    /* a new pool */
	ck_assert_int_eq(l1_lookup(a, "old", &o), 0);          /* the old one lives on */
	l1_arena_close(a);
	ck_assert_int_eq(count_temps(path), 0);
	l1t_destroy(b);
}
END_TEST

static uint64_t mount_free_bytes(const char *dir)
{
	struct statfs sf;
	ck_assert_int_eq(statfs(dir, &sf), 0);
	return (uint64_t)sf.f_bfree * (uint64_t)sf.f_bsize;
}

/* A private hugetlbfs of mib MiB at mnt whose pages are reserved at mount
 * (min_size), so other users of the machine's huge pages cannot change what
 * fits in it.  0, or -1 (the caller skips: not root, no huge pages). */
static int quota_mount(char *mnt, unsigned mib, const char *test)
{
	char opts[96];
	if (!l1t_on_hugetlbfs() || geteuid() != 0) {
		printf("%s: skipped (needs root and hugetlbfs)\n", test);
		return -1;
	}
	mount_point(mnt, 64, "quota");
	snprintf(opts, sizeof opts, "pagesize=2M,size=%uM,min_size=%uM,mode=0700", mib, mib);
	if (mount("none", mnt, "hugetlbfs", 0, opts) < 0) {
		printf("%s: skipped (cannot mount hugetlbfs -o %s: %s)\n", test, opts,
		       strerror(errno));
		rmdir(mnt);
		return -1;
	}
	return 0;
}

static void quota_umount(const char *mnt)
{
	ck_assert_int_eq(umount(mnt), 0);
	rmdir(mnt);
}

START_TEST(force_keeps_old_when_new_does_not_fit)
{
	char mnt[64], path[128];
	if (quota_mount(mnt, 40, "force_keeps_old_when_new_does_not_fit"))
		return;
	struct l1_config c;
	struct l1_arena *a, *b;
	snprintf(path, sizeof path, "%s/pool", mnt);
	l1t_config(&c, "forcefit", 24 * MiB);   /* one fits in 40 MiB, two do not */
	c.path = path;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	struct l1_obj o;
	ck_assert_int_eq(l1_alloc_bytes(a, BLK, 1, &o), 0);
	ck_assert_int_eq(l1_publish(a, o.id, "kept"), 0);
	l1_arena_close(a);
	uint64_t before = mount_free_bytes(mnt);
	c.force = 1;
	int r = l1_arena_create(&c, &b);
	ck_assert_msg(r == -ENOSPC, "create --force: %d %s", r, l1_last_error());
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "left as it was"));
	ck_assert_int_eq(count_temps(path), 0);
	ck_assert_uint_eq(mount_free_bytes(mnt), before);
	a = open_pool(path, 0);
	ck_assert_int_eq(l1_lookup(a, "kept", &o), 0);
	l1t_destroy(a);
	quota_umount(mnt);
}
END_TEST

/* ---- growth ------------------------------------------------------------ */

START_TEST(failed_growth_gives_back)
{
	char mnt[64], path[128];
	if (quota_mount(mnt, 60, "failed_growth_gives_back"))
		return;
	snprintf(path, sizeof path, "%s/pool", mnt);
	struct l1_config c;
	struct l1_arena *a, *b;
	l1_config_init(&c);
	c.path = path;
	c.size_bytes = 64 * MiB;
	c.lazy = 1;
	c.init_size_bytes = 32 * MiB;
	c.grow_step_bytes = 32 * MiB;
	c.pin = L1_PIN_OFF;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	struct l1_obj o[3];
	ck_assert_int_eq(l1_alloc_bytes(a, 16 * MiB, 2, o), 0);        /* all committed */
	uint64_t before = mount_free_bytes(mnt);
	ck_assert_uint_gt(before, 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 1 * MiB, 1, &o[2]), -ENOMEM);  /* growth fails */
	ck_assert_uint_eq(mount_free_bytes(mnt), before);       /* every page came back */
	struct l1_health h;
	ck_assert_int_eq(l1_arena_health(a, &h), 0);
	ck_assert_uint_eq(h.grow_failures, 1);
	ck_assert_uint_eq(h.grow_returned_bytes, before);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_ptr_nonnull(strstr(u.grow_reason, "gave back"));
	char out[4096];
	char *argv[] = { (char *)bin("l1ctl"), "info", "--path", path, NULL };
	ck_assert_int_eq(run_capture(out, sizeof out, argv), 0);
	ck_assert_msg(strstr(out, "1 failed growth(s) gave back"), "l1ctl info: %s", out);
	/* and a pool beside it still fits in what came back */
	c.path = strcat(strcpy(out, mnt), "/beside");
	c.size_bytes = 16 * MiB;
	c.lazy = 0;
	c.init_size_bytes = 0;
	c.grow_step_bytes = 0;
	ck_assert_msg(l1_arena_create(&c, &b) == 0, "beside: %s", l1_last_error());
	l1t_destroy(b);
	l1t_destroy(a);
	quota_umount(mnt);
}
END_TEST

START_TEST(gc_before_growth)
{
	struct l1_config c;
	struct l1_arena *a;
	char path[512];
	l1t_config(&c, "gcfirst", 64 * MiB);
	snprintf(path, sizeof path, "%s", c.path);
	c.path = path;
	c.lazy = 1;
	c.init_size_bytes = 16 * MiB;
	c.grow_step_bytes = 16 * MiB;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	pid_t p = fork();
	if (p == 0) {           /* a writer that dies with the committed part allocated */
		struct l1_arena *w = open_pool(path, 0);
		struct l1_obj o[4];
		_exit(l1_alloc_bytes(w, 4 * MiB, 4, o) ? 1 : 0);
	}
	ck_assert_int_eq(l1t_wait(p), 0);
	l1t_seen_dead(a, p);    /* its lock may trail waitpid (l1t_gc_dead) */
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.committed_bytes, 16 * MiB);
	ck_assert_uint_eq(u.used_bytes, 16 * MiB);
	struct l1_obj o;
	ck_assert_int_eq(l1_alloc_bytes(a, 4 * MiB, 1, &o), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.committed_bytes, 16 * MiB);        /* reused, not grown */
	ck_assert_uint_eq(u.used_bytes, 4 * MiB);
	l1t_destroy(a);
}
END_TEST

/* ---- a client stopped inside the lock ---------------------------------- */

/* A child that allocates n objects of `bytes`, fills them and frees them,
 * raising sig inside the pool lock half-way through the free (after n/2 are
 * retired: their extents in the dirty table, queued to nobody yet). */
static int mid_free_signal;

static void signal_mid_free(struct l1_arena *a, int where)
{
	(void)a;
	if (where == L1_HOOK_FREE_MID)
		raise(mid_free_signal);
}

static pid_t child_freeing(const char *path, uint32_t n, uint64_t bytes, int sig)
{
	pid_t p = fork();
	if (p == 0) {
		die_with_parent(SIGKILL);
		struct l1_arena *b = open_pool(path, 0);
		struct l1_obj o[8];
		if (n > 8 || l1_alloc_bytes(b, bytes, n, o))
			_exit(2);
		for (uint32_t i = 0; i < n; i++)
			memset(o[i].ptr, 0xab, o[i].size);
		mid_free_signal = sig;
		l1_test_set_hook(b, signal_mid_free);
		_exit(l1_free(b, o, n) ? 1 : 0);
	}
	ck_assert_int_gt(p, 0);
	return p;
}

/* A child stopped inside the pool lock. */
static pid_t stopped_holder(const char *path)
{
	pid_t p = child_freeing(path, 2, BLK, SIGSTOP);
	int st;
	ck_assert_int_eq(waitpid(p, &st, WUNTRACED), p);
	ck_assert(WIFSTOPPED(st));
	return p;
}

static void names_holder(const char *what, const char *msg, pid_t p)
{
	char pid[32];
	snprintf(pid, sizeof pid, "pid %d", (int)p);
	ck_assert_msg(strstr(msg, pid) && strstr(msg, "stopped"), "%s does not name the "
		      "stopped holder (%s): %s", what, pid, msg);
}

/* l1fs on a fresh mount point; its pid, the mount point in mnt. */
static pid_t mount_view(char *mnt, const char *pool)
{
	mount_point(mnt, 64, "view");
	pid_t p = fork();
	if (p == 0) {
		die_with_parent(SIGTERM);
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin("l1fs"), "l1fs", mnt, "--arena", pool, "-f", "-o", "gc_interval=0.3",
		      (char *)NULL);
		_exit(127);
	}
	char stats[600];
	snprintf(stats, sizeof stats, "%s/stats", mnt);
	for (int i = 0; i < 500; i++) {
		if (access(stats, R_OK) == 0)
			return p;
		if (waitpid(p, NULL, WNOHANG) == p)
			break;
		sleep_ns(20000000);
	}
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
	rmdir(mnt);
	return -1;
}

static void unmount_view(const char *mnt, pid_t p)
{
	char *argv[] = { "/bin/fusermount3", "-u", (char *)mnt, NULL };
	char out[512];
	if (run_capture(out, sizeof out, argv) != 0)
		umount2(mnt, MNT_DETACH);
	kill(p, SIGTERM);
	waitpid(p, NULL, 0);
	rmdir(mnt);
}

/* `cat path` (a child that may wait in the kernel), its output in out. */
static int cat(const char *path, char *out, size_t len)
{
	char *argv[] = { "/bin/cat", (char *)path, NULL };
	return run_capture(out, len, argv);
}

START_TEST(stopped_inside_the_lock)
{
	setenv("L1ARENA_LOCK_TIMEOUT_MS", BOUND_MS, 1);
	struct l1_arena *a = l1t_create("stop", 8 * MiB);
	char path[512], mnt[64], out[8192], msg[512];
	snprintf(path, sizeof path, "%s", l1_arena_path(a));
	struct l1_obj o;
	ck_assert_int_eq(l1_alloc_bytes(a, BLK, 1, &o), 0);
	ck_assert_int_eq(l1_publish(a, o.id, "before"), 0);
	pid_t view = access("/dev/fuse", R_OK | W_OK) == 0 ? mount_view(mnt, path) : -1;
	pid_t p = stopped_holder(path);

	struct l1_health h;
	ck_assert_int_eq(l1_arena_health(a, &h), 0);
	ck_assert_int_eq(h.lock_pid, p);
	ck_assert_str_eq(h.lock_state, "stopped");
	uint64_t t0 = mono_ns();
	ck_assert_int_eq(l1_alloc_bytes(a, BLK, 1, &o), -ETIMEDOUT);
	names_holder("allocate", l1_last_error(), p);
	ck_assert_int_eq(l1_lookup(a, "before", &o), -ETIMEDOUT);
	ck_assert_int_eq(l1_arena_gc(a, NULL), -ETIMEDOUT);
	names_holder("gc", l1_last_error(), p);
	ck_assert_int_lt(l1_arena_memcheck(a, 0, out, sizeof out), 0);
	struct l1_usage u;                      /* usage answers, without the lock */
	ck_assert_int_eq(l1_arena_usage(a, &u), 0);
	names_holder("usage", u.grow_reason, p);
	struct l1_open_opts oo;
	struct l1_arena *b;
	l1_open_opts_init(&oo);
	oo.pin = L1_PIN_OFF;
	ck_assert_int_eq(l1_arena_open(path, &oo, &b), -ETIMEDOUT);
	ck_assert_uint_lt(mono_ns() - t0, HANG_GUARD_NS);
	ck_assert_int_eq(l1_arena_health(a, &h), 0);
	ck_assert_uint_ge(h.lock_timeouts, 4);

	char *info[] = { (char *)bin("l1ctl"), "info", "--path", path, NULL };
	ck_assert_int_eq(run_capture(out, sizeof out, info), 0);
	names_holder("l1ctl info", out, p);
	char *gc[] = { (char *)bin("l1ctl"), "gc", "--path", path, NULL };
	ck_assert_int_eq(run_capture(out, sizeof out, gc), 1);
	names_holder("l1ctl gc", out, p);
	char *mc[] = { (char *)bin("l1ctl"), "memcheck", "--path", path, NULL };
	ck_assert_int_eq(run_capture(out, sizeof out, mc), 1);
	names_holder("l1ctl memcheck", out, p);
	if (view > 0) {
		snprintf(msg, sizeof msg, "%s/stats", mnt);
		ck_assert_int_eq(cat(msg, out, sizeof out), 0);
		names_holder("cat stats", out, p);
		snprintf(msg, sizeof msg, "%s/objects", mnt);
		DIR *d = opendir(msg);          /* a listing needs the lock: EAGAIN, not a hang */
		int e = 0;
		if (!d)
			e = errno;
		else {
			errno = 0;
			while (readdir(d))
				;
			e = errno;
			closedir(d);
		}
		ck_assert_msg(e == 0 || e == EAGAIN, "ls objects: %s", strerror(e));
	} else {
		printf("stopped_inside_the_lock: no /dev/fuse or l1fs: the view part skipped\n");
	}
	ck_assert_uint_lt(mono_ns() - t0, 2 * HANG_GUARD_NS);

	kill(p, SIGCONT);
	ck_assert_int_eq(l1t_wait(p), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, BLK, 1, &o), 0);
	ck_assert_int_eq(l1_arena_health(a, &h), 0);
	ck_assert_int_eq(h.lock_pid, 0);
	if (view > 0) {
		snprintf(msg, sizeof msg, "%s/stats", mnt);
		ck_assert_int_eq(cat(msg, out, sizeof out), 0);
		ck_assert_ptr_nonnull(strstr(out, "lock              free"));
		unmount_view(mnt, view);
	}
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

/* A busy client (4 threads allocating, writing, freeing; zeroing on, its
 * engine slowed a little so that a stop finds extents still dirty) stopped
 * at random moments.  During each stop, with it still stopped:
 *  - this process's calls return, with success or -ETIMEDOUT naming it,
 *    within the lock bound (the guard below is generous: a stop inside the
 *    lock fails calls after 1 s; one outside lets allocate wait out the
 *    lease);
 *  - `cat MOUNT/stats` (when a view can be mounted) and l1_arena_usage /
 *    l1_arena_health answer, and name it when it holds the lock;
 *  - unless it holds the lock (nobody may take a live process's lock), its
 *    dirty memory is zeroed and released by this process (gc once the lease
 *    ran out), all but the extents its engine had begun to write (a write
 *    in flight may land after the stop: those bytes are never handed out
 *    again before it goes on or dies; format.h, L1_ZEROER_WRITING), and an
 *    allocation of all the free memory, which needs those bytes, succeeds
 *    and reads zero; when it was writing nothing, flush succeeds too.
 * After each SIGCONT it runs on for a while; then memcheck is clean (it
 * released nothing twice) and no byte of this process's live objects, the
 * ones from before and those made of its taken-over memory, changed. */
#define STOP_SLOWED_NS 2000000ull       /* the busy client's engine naps this per extent */
#define STOP_OBJ (64 * 1024ull)
#define STOP_KEEP 8                     /* objects this process keeps all along */
#define STOP_GUARD_NS ((1000ull + L1_LEASE_MS) * 1000000ull + 20000000000ull)

static void slow_engine(struct l1_arena *a, int where)
{
	(void)a;
	if (where == L1_HOOK_ZERO_ISSUE)
		sleep_ns(STOP_SLOWED_NS);
}

static void *busy_thread(void *p)
{
	struct l1_arena *b = p;
	struct l1_obj o[4];
	for (;;)
		if (l1_alloc_bytes(b, STOP_OBJ, 4, o) == 0) {
			for (int k = 0; k < 4; k++)
				memset(o[k].ptr, 0xc3, o[k].size);
			l1_free(b, o, 4);
		}
	return NULL;
}

static pid_t busy_client(const char *path)
{
	pid_t p = fork();
	if (p == 0) {
		die_with_parent(SIGKILL);
		struct l1_arena *b = open_pool(path, 0);
		l1_test_set_hook(b, slow_engine);
		pthread_t t;
		for (int i = 0; i < 4; i++)
			pthread_create(&t, NULL, busy_thread, b);
		pause();
		_exit(0);
	}
	ck_assert_int_gt(p, 0);
	return p;
}

/* A call during the stop: it returned, in time, with success or an error
 * naming the stopped client. */
static void call_returned(const char *what, int r, uint64_t t0, pid_t p)
{
	uint64_t took = mono_ns() - t0;
	ck_assert_msg(r == 0 || r == -ETIMEDOUT, "%s during a stop: %d %s", what, r,
		      l1_last_error());
	if (r)
		names_holder(what, l1_last_error(), p);
	ck_assert_msg(took < STOP_GUARD_NS, "%s took %llu ms during a stop", what,
		      (unsigned long long)(took / 1000000));
}

/* Bytes of dirty extents that the stopped client p's engine began writing. */
static uint64_t writing_bytes(struct l1_arena *a, pid_t p)
{
	uint64_t n = 0;
	for (uint32_t s = 0; s < a->h->max_clients; s++) {
		struct l1_client *c = &a->clients[s];
		if (c->state != L1_CLIENT_LIVE || c->pid != p)
			continue;
		uint32_t w = (s | c->gen << L1_CLIENT_BITS) | L1_ZEROER_WRITING;
		for (uint64_t i = 0; i < a->h->max_objects; i++)
			if (atomic_load(&a->recs[i].state) == L1_STATE_DIRTY &&
			    a->recs[i].zeroer_client == w)
				n += a->recs[i].size;
		for (uint64_t i = 0; a->dirty && i < a->h->max_dirty; i++)
			if (a->dirty[i].offset && a->dirty[i].zeroer_client == w)
				n += a->dirty[i].size;
	}
	return n;
}

static void keep_check(struct l1_obj *o, uint32_t n, uint64_t seed, const char *what)
{
	for (uint32_t i = 0; i < n; i++)
		ck_assert_msg(l1t_check(o[i].ptr, o[i].size, seed + i), "%s object %u lost bytes",
			      what, i);
}

START_TEST(stopped_at_random_moments)
{
	setenv("L1ARENA_LOCK_TIMEOUT_MS", BOUND_MS, 1);
	struct l1_arena *a = l1t_create("randstop", 32 * MiB);
	char path[512], mnt[64], stats[600], out[8192];
	snprintf(path, sizeof path, "%s", l1_arena_path(a));
	static struct l1_obj keep[STOP_KEEP], took[512];
	ck_assert_int_eq(l1_alloc_bytes(a, STOP_OBJ, STOP_KEEP, keep), 0);
	for (uint32_t i = 0; i < STOP_KEEP; i++)
		l1t_fill(keep[i].ptr, keep[i].size, 1000 + i);
	pid_t view = access("/dev/fuse", R_OK | W_OK) == 0 ? mount_view(mnt, path) : -1;
	snprintf(stats, sizeof stats, "%s/stats", mnt);
	pid_t p = busy_client(path);
	unsigned seed = (unsigned)p;
	int in_lock = 0, taken = 0;
	uint64_t dirty_taken = 0, writing = 0;
	for (int i = 0; i < 10; i++) {
		sleep_ns(5000000 + (uint64_t)rand_r(&seed) % 40000000);
		kill(p, SIGSTOP);
		int st;
		ck_assert_int_eq(waitpid(p, &st, WUNTRACED), p);
		ck_assert(WIFSTOPPED(st));
		struct l1_health h;
		struct l1_usage u;
		ck_assert_int_eq(l1_arena_health(a, &h), 0);
		int held = h.lock_pid == p;
		ck_assert_msg(h.lock_pid == 0 || held, "lock held by %d, not the stopped %d",
			      (int)h.lock_pid, (int)p);
		ck_assert_int_eq(l1_arena_usage(a, &u), 0);
		uint64_t dirty0 = u.dirty_bytes;

		uint64_t t0 = mono_ns();
		struct l1_obj o;
		int r = l1_alloc_bytes(a, STOP_OBJ, 1, &o);
		call_returned("allocate", r, t0, p);
		if (r == 0) {
			t0 = mono_ns();
			call_returned("free", l1_free(a, &o, 1), t0, p);
		}
		ck_assert_msg(!held || r == -ETIMEDOUT, "allocate went through while the "
			      "stopped client holds the lock");
		if (view > 0) {
			t0 = mono_ns();
			ck_assert_int_eq(cat(stats, out, sizeof out), 0);
			ck_assert_uint_lt(mono_ns() - t0, STOP_GUARD_NS);
			if (held)
				names_holder("cat stats", out, p);
		}
		if (held) {
			in_lock++;
			t0 = mono_ns();
			call_returned("gc", l1_arena_gc(a, NULL), t0, p);
		} else {
			/* its dirty memory: zeroed and released by this process
			 * (gc past the lease), but for what it was writing */
			uint64_t stuck = writing_bytes(a, p);
			t0 = mono_ns();
			for (;;) {
				call_returned("gc", l1_arena_gc(a, NULL), mono_ns(), p);
				ck_assert_int_eq(l1_arena_usage(a, &u), 0);
				if (u.dirty_bytes <= stuck || mono_ns() - t0 > STOP_GUARD_NS)
					break;
				sleep_ns(20000000);
			}
			ck_assert_msg(u.dirty_bytes == stuck, "stop %d: %llu bytes still dirty while "
				      "the client that freed them is stopped (%llu being written by "
				      "it)", i, (unsigned long long)u.dirty_bytes,
				      (unsigned long long)stuck);
			if (!stuck) {
				t0 = mono_ns();
				call_returned("flush", l1_arena_flush(a, 20000), t0, p);
			}
			if (dirty0 > stuck) {
				taken++;
				dirty_taken += dirty0 - stuck;
			}
			writing += stuck;
			/* all the free memory, which needs those bytes */
			uint32_t n = (uint32_t)(u.free_bytes / STOP_OBJ);
			ck_assert_uint_le(n, 512);
			t0 = mono_ns();
			r = l1_alloc_bytes(a, STOP_OBJ, n, took);
			call_returned("allocate all that is free", r, t0, p);
			ck_assert_msg(r == 0, "stop %d: %u objects of the free %llu bytes: %s", i,
				      n, (unsigned long long)u.free_bytes, l1_last_error());
			for (uint32_t k = 0; k < n; k++) {
				ck_assert_msg(l1t_is_zero(took[k].ptr, took[k].size),
					      "stop %d: object %u of taken-over memory not zero", i, k);
				l1t_fill(took[k].ptr, took[k].size, 5000 + k);
			}
			kill(p, SIGCONT);
			sleep_ns(100000000);    /* its engine goes on: it must write none of these */
			keep_check(took, n, 5000, "a taken-over");
			t0 = mono_ns();
			call_returned("free", l1_free(a, took, n), t0, p);
		}
		kill(p, SIGCONT);
		sleep_ns(50000000);
		keep_check(keep, STOP_KEEP, 1000, "a kept");
		l1t_memcheck_clean(a);  /* nothing released twice */
	}
	kill(p, SIGKILL);
	l1t_wait(p);
	printf("stopped at random moments: 10 stops, %d inside the lock, %d with dirty memory "
	       "that this process took over (%llu KiB), %llu KiB left to the stopped engine "
	       "that had begun writing it%s\n", in_lock, taken,
	       (unsigned long long)(dirty_taken >> 10), (unsigned long long)(writing >> 10),
	       view > 0 ? "" : "; no view mounted");
	ck_assert_int_eq(l1_arena_gc(a, NULL), 0);
	ck_assert_int_eq(l1_arena_flush(a, 30000), 0);
	keep_check(keep, STOP_KEEP, 1000, "a kept");
	l1t_memcheck_clean(a);
	if (view > 0)
		unmount_view(mnt, view);
	l1t_destroy(a);
}
END_TEST

/* ---- close ------------------------------------------------------------- */

#define NDOOMED 100

START_TEST(close_retires_every_doomed_object)
{
	struct l1_arena *a = l1t_create("close", 8 * MiB);
	static struct l1_obj o[NDOOMED];
	char key[32];
	ck_assert_int_eq(l1_alloc_bytes(a, BLK, NDOOMED, o), 0);
	for (int i = 0; i < NDOOMED; i++) {
		snprintf(key, sizeof key, "k%d", i);
		ck_assert_int_eq(l1_publish(a, o[i].id, key), 0);
	}
	struct l1_arena *r = open_pool(l1_arena_path(a), 0);   /* a reader */
	for (int i = 0; i < NDOOMED; i++)
		ck_assert_int_eq(l1_hold(r, o[i].id, NULL), 0);
	ck_assert_int_eq(l1_free(a, o, NDOOMED), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], NDOOMED);
	l1_arena_close(r);
	/* no gc: close itself retired them all */
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], 0);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_uint_eq(u.holds, 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

/* ---- repair ------------------------------------------------------------ */

/* A child allocates 8 objects of 512 KiB, writes them, and is killed inside
 * the lock half-way through freeing them: 4 are in the dirty table (queued
 * to nobody), 4 still allocated. */
static void die_freeing(const char *path)
{
	ck_assert_int_eq(l1t_wait(child_freeing(path, 8, 512 * 1024, SIGKILL)), 128 + SIGKILL);
}

/* Without any gc: the repair gave the dead holder's dirty extents to a's
 * engine, which zeroes them; the freed half reads zero when allocated. */
static void dirty_zeroed_without_gc(struct l1_arena *a)
{
	struct l1_usage u;
	uint64_t end = mono_ns() + HANG_GUARD_NS;
	do {
		sleep_ns(10000000);
		l1_arena_usage(a, &u);  /* takes the lock: releases what the engine did */
	} while (u.dirty_bytes && mono_ns() < end);
	ck_assert_uint_ge(u.repairs, 1);
	ck_assert_msg(u.dirty_bytes == 0, "%llu bytes still dirty after the repair",
		      (unsigned long long)u.dirty_bytes);
	ck_assert_uint_eq(u.used_bytes, 2 * MiB);               /* the dead one's other half */
	struct l1_obj o[12];
	ck_assert_int_eq(l1_alloc_bytes(a, 512 * 1024, 12, o), 0);
	for (int i = 0; i < 12; i++)
		ck_assert_msg(l1t_is_zero(o[i].ptr, o[i].size), "object %d not zeroed", i);
}

START_TEST(repair_in_a_call_requeues_without_gc)
{
	struct l1_arena *a = l1t_create("repcall", 8 * MiB);
	die_freeing(l1_arena_path(a));
	dirty_zeroed_without_gc(a);     /* the repair happens in the first lock */
	l1t_destroy(a);
}
END_TEST

START_TEST(repair_in_attach_requeues_without_gc)
{
	struct l1_arena *a = l1t_create("repattach", 8 * MiB);
	char path[512];
	snprintf(path, sizeof path, "%s", l1_arena_path(a));
	l1_arena_close(a);
	die_freeing(path);
	a = open_pool(path, 0);         /* the repair happens inside attach */
	dirty_zeroed_without_gc(a);
	l1t_destroy(a);
}
END_TEST

/* ---- hostile: a dirty extent that shares one block with a live object -- */

/* Damage: a dirty extent nobody zeroes, of n blocks from off, its blocks
 * taken in the bitmap (those of the live object are already). */
static void forge_dirty(struct l1_arena *a, uint64_t off, uint64_t n)
{
	struct l1_zero_extent x;
	ck_assert_int_eq(l1__lock(a), 0);
	l1__bm_set(a, (off - a->h->data_off) / BLK, n);
	ck_assert_int_eq(l1__dirty_add(a, off, n * BLK, &x), 0);
	/* nobody zeroes it: gc would take it over, unless it overlaps a live object */
	struct l1_dirty_ent *e = &a->dirty[x.slot & ~L1_ZX_TABLE];
	e->zeroer_pid = 0;
	__atomic_store_n(&e->zeroer_client, 0, __ATOMIC_RELAXED);
	l1__unlock(a);
}

static void gc_spares(struct l1_arena *a, const struct l1_obj *x, uint64_t seed)
{
	struct l1_gc_result g;
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_int_eq(l1_zero_flush(a->zero, 10000), 0);     /* whatever gc queued is done */
	ck_assert_uint_eq(g.dirty_requeued, 0);
	ck_assert_msg(l1t_check(x->ptr, x->size, seed), "gc zeroed a block of a live object");
}

START_TEST(gc_spares_a_block_shared_with_a_live_object)
{
	struct l1_arena *a = l1t_create("overlap", 4 * MiB);
	struct l1_obj pad, x;
	ck_assert_int_eq(l1_alloc_bytes(a, 3 * BLK, 1, &pad), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 8 * BLK, 1, &x), 0);
	ck_assert_uint_eq(x.offset, pad.offset + 3 * BLK);     /* first fit: back to back */
	l1t_fill(x.ptr, x.size, 5);
	ck_assert_int_eq(l1_free(a, &pad, 1), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	/* its last block is the object's first */
	forge_dirty(a, pad.offset, 4);
	gc_spares(a, &x, 5);
	/* its first block is the object's last */
	forge_dirty(a, x.offset + 7 * BLK, 4);
	gc_spares(a, &x, 5);
	char rep[8192];
	ck_assert_int_gt(l1_arena_memcheck(a, 0, rep, sizeof rep), 0);  /* named as damage */
	ck_assert(l1t_check(x.ptr, x.size, 5));
	l1t_destroy(a);
}
END_TEST

/* Turn queues whose counters claim more waiters than there can be, or a
 * serving ticket past the next one: emptied by the next caller, and the
 * calls work. */
START_TEST(damaged_turn_queues)
{
	struct l1_arena *a = l1t_create("queues", 4 * MiB);
	struct l1_hdr *h = a->h;
	atomic_store(&h->lock_queue.next, atomic_load(&h->lock_queue.serving) + 1000000);
	atomic_store(&h->mem_queue.serving, atomic_load(&h->mem_queue.next) + 5);
	struct l1_obj o;
	ck_assert_int_eq(l1_alloc_bytes(a, BLK, 1, &o), 0);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	ck_assert_uint_eq(atomic_load(&h->lock_queue.next), atomic_load(&h->lock_queue.serving));
	ck_assert_uint_eq(atomic_load(&h->mem_queue.next), atomic_load(&h->mem_queue.serving));
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("robust");
	TCase *t = tcase_create("create");
	tcase_add_unchecked_fixture(t, NULL, sweep_mounts);
	tcase_set_timeout(t, 180);
	tcase_add_test(t, kill_during_create);
	tcase_add_test(t, force_needs_twice_while_attached);
	tcase_add_test(t, force_keeps_old_when_new_does_not_fit);
	suite_add_tcase(s, t);
	t = tcase_create("growth");
	tcase_add_unchecked_fixture(t, NULL, sweep_mounts);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, failed_growth_gives_back);
	tcase_add_test(t, gc_before_growth);
	suite_add_tcase(s, t);
	t = tcase_create("stall");
	tcase_add_unchecked_fixture(t, NULL, sweep_mounts);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, stopped_inside_the_lock);
	tcase_add_test(t, stopped_at_random_moments);
	suite_add_tcase(s, t);
	t = tcase_create("close");
	tcase_add_test(t, close_retires_every_doomed_object);
	suite_add_tcase(s, t);
	t = tcase_create("repair");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, repair_in_a_call_requeues_without_gc);
	tcase_add_test(t, repair_in_attach_requeues_without_gc);
	suite_add_tcase(s, t);
	t = tcase_create("hostile");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, gc_spares_a_block_shared_with_a_live_object);
	tcase_add_test(t, damaged_turn_queues);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
