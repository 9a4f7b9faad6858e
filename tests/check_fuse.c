/*
 * check_fuse.c - l1fs on real mounts.  Each TCase mounts a fresh view (the
 * l1fs binary of this build, in the foreground, as a child of the Check
 * runner, with PR_SET_PDEATHSIG so it goes away with the runner) over a
 * fresh pool, and its teardown unmounts it whatever the tests did; tests run
 * in forked children and attach to the pool themselves.  Objects are written
 * and published by other processes that really fork; readers use open,
 * read, mmap, stat, readdir, readlink, getxattr on the mount, as a shell
 * would.  Covered: listing and attributes, bytes through read and mmap, an
 * object appearing and vanishing, writes only to unpublished objects of the
 * owner, rm, holds (an open or mapped file keeps its bytes after a free),
 * another user (nobody) refused by mode, l1_open_path zero-copy, stats and
 * metrics fresh per read, errnos, and abuse: floods of opens, readers killed
 * mid-read, unmount and signals while busy, a crashed daemon.
 *
 * `check_fuse --helper CMD ...` is a small pool tool for tests/sh/test_fuse.sh
 * (create, put, dump, state, free, memcheck, destroy), so the shell test does
 * not depend on l1ctl.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "nsutil.h"
#include "testutil.h"

#define MiB (1ull << 20)
#define NOBODY 65534

/* ---- mounting ---------------------------------------------------------- */

struct view {
	char pool[512];
	char mnt[256];
	pid_t pid;
};

static struct view V;                   /* the TCase's mount (parent's copy) */
static pid_t runner;                    /* the Check runner, parent of the tests */

static const char *l1fs_bin(void)
{
	static char buf[512];
	const char *b = getenv("L1FS_BIN");
	if (b && *b)
		return b;
	const char *build = getenv("BUILD");
	snprintf(buf, sizeof buf, "%s/bin/l1fs", build && *build ? build : "build");
	return buf;
}

static int is_mounted(const char *mnt)
{
	char line[4096], real[PATH_MAX];
	int found = 0;
	if (!realpath(mnt, real))
		return 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		char m[2048];
		if (sscanf(line, "%*s %*s %*s %*s %2047s", m) == 1 && !strcmp(m, real) &&
		    strstr(line, " - fuse.l1fs "))
			found = 1;
	}
	fclose(f);
	return found;
}

static pid_t spawn_l1fs(const char *mnt, const char *pool, const char *opts)
{
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		execl(l1fs_bin(), "l1fs", mnt, "--arena", pool, "-f", "-o", opts, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", l1fs_bin(), strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Waits until the mount is live (1), or the daemon exited (0). */
static int wait_mounted(const char *mnt, pid_t pid)
{
	for (int i = 0; i < 1000; i++) {
		struct stat st;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return 0;
		if (is_mounted(mnt) && stat(mnt, &st) == 0 && st.st_ino == 1)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* Waits up to ms for pid; its exit status, 128+signal, or -1 if running. */
static int wait_exit(pid_t pid, int ms)
{
	int st;
	for (int i = 0; i <= ms / 10; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0)
			return -2;
		usleep(10000);
	}
	return -1;
}

/* Stops the daemon and makes sure nothing stays mounted. */
static int stop_l1fs(const char *mnt, pid_t pid)
{
	int rc = -1;
	if (pid > 0) {
		kill(pid, SIGTERM);
		rc = wait_exit(pid, 10000);
		if (rc == -1) {
			kill(pid, SIGKILL);
			rc = wait_exit(pid, 5000);
		}
	}
	if (is_mounted(mnt))
		umount2(mnt, MNT_DETACH);
	return rc;
}

static void make_pool(char *out, size_t len, const char *name, uint64_t size)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, name, size);
	c.mode = 0600;
	snprintf(out, len, "%s", c.path);
	c.path = out;
	int r = l1_arena_create(&c, &a);
	ck_assert_msg(r == 0, "create %s: %s", out, l1_last_error());
	l1_arena_close(a);
}

static void mount_teardown(void);

static void mount_setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	memset(&V, 0, sizeof V);
	make_pool(V.pool, sizeof V.pool, "fuse", 64 * MiB);
	snprintf(V.mnt, sizeof V.mnt, "/tmp/l1fs-test.XXXXXX");
	ck_assert(mkdtemp(V.mnt) != NULL);
	chmod(V.mnt, 0755);     /* nobody must reach it */
	/* allow_other lets the nobody checks in; a user would need
	 * user_allow_other in /etc/fuse.conf for it, so only as root */
	V.pid = spawn_l1fs(V.mnt, V.pool, getuid() == 0 ? "allow_other,gc_interval=0.3"
							: "gc_interval=0.3");
	if (V.pid <= 0 || !wait_mounted(V.mnt, V.pid)) {
		mount_teardown();       /* a failed setup gets no teardown */
		ck_abort_msg("l1fs did not mount %s (%s)", V.mnt, l1fs_bin());
	}
}

static void mount_teardown(void)
{
	stop_l1fs(V.mnt, V.pid);
	rmdir(V.mnt);
	l1_arena_destroy(V.pool, 1);
}

/* ---- helpers ----------------------------------------------------------- */

static const char *P(const char *fmt, ...)
{
	static char buf[16][1024];      /* a ring: keep a path with strdup */
	static unsigned k;
	char rel[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	char *b = buf[k++ % 16];
	snprintf(b, sizeof buf[0], "%s/%s", V.mnt, rel);
	return b;
}

static struct l1_arena *attach(void)
{
	struct l1_open_opts o;
	struct l1_arena *a = NULL;
	l1_open_opts_init(&o);
	o.pin = L1_PIN_OFF;
	int r = l1_arena_open(V.pool, &o, &a);
	ck_assert_msg(r == 0, "open %s: %s", V.pool, l1_last_error());
	return a;
}

/* Runs this program's helper mode in a new process (exec, so a process
 * that has threads can use it, sanitizers included); its exit status, with
 * its first line of output in out. */
static int run_helper(char *out, size_t len, const char *const *args)
{
	const char *argv[12] = { "check_fuse", "--helper" };
	int p[2], n = 2;
	for (; *args && n < 11; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	ck_assert(pipe(p) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	ssize_t got = 0, r;
	while (got < (ssize_t)len - 1 && (r = read(p[0], out + got, len - 1 - (size_t)got)) > 0)
		got += r;
	out[got] = 0;
	close(p[0]);
	return l1t_wait(pid);
}

/* Another process allocates `bytes`, fills them from seed, sets mode (if
 * not 0), publishes under key (NULL: none) and exits; returns the id. */
static uint64_t publish_elsewhere(const char *key, uint64_t bytes, uint64_t seed,
				  uint32_t mode)
{
	char b[32], s[32], m[32], out[64];
	snprintf(b, sizeof b, "%" PRIu64, bytes);
	snprintf(s, sizeof s, "%" PRIu64, seed);
	snprintf(m, sizeof m, "%o", mode);
	const char *args[] = { "put", V.pool, key ? key : "-", b, s, m, NULL };
	ck_assert_int_eq(run_helper(out, sizeof out, args), 0);
	return strtoull(out, NULL, 10);
}

static void free_elsewhere(uint64_t id)
{
	char i[32], out[64];
	snprintf(i, sizeof i, "%" PRIu64, id);
	const char *args[] = { "free", V.pool, i, NULL };
	ck_assert_int_eq(run_helper(out, sizeof out, args), 0);
}

static int dir_has(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d)))
		if (!strcmp(e->d_name, name))
			found = 1;
	closedir(d);
	return found;
}

static const char *idstr(uint64_t id)
{
	static char b[4][24];
	static unsigned k;
	char *s = b[k++ % 4];
	snprintf(s, sizeof b[0], "%" PRIu64, id);
	return s;
}

/* Reads a whole (small) file; returns its length, buf NUL-terminated. */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	size_t n = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t r = read(fd, buf + n, len - 1 - n);
		if (r < 0) {
			close(fd);
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == len - 1)
			break;
	}
	close(fd);
	buf[n] = 0;
	return (ssize_t)n;
}

static void xattr_is(const char *path, const char *name, const char *want)
{
	char v[512];
	ssize_t n = getxattr(path, name, v, sizeof v - 1);
	ck_assert_msg(n >= 0, "getxattr %s %s: %s", path, name, strerror(errno));
	v[n] = 0;
	ck_assert_msg(!strcmp(v, want), "%s: %s = '%s', want '%s'", path, name, v, want);
}

static uint32_t holds_of(struct l1_arena *a, uint64_t id)
{
	struct l1_obj_info oi;
	return l1_obj_info(a, id, &oi) == 0 ? oi.holds : 0;
}

/* State of an object, or -1 if it is gone. */
static int state_of(struct l1_arena *a, uint64_t id)
{
	struct l1_obj_info oi;
	return l1_obj_info(a, id, &oi) == 0 ? (int)oi.state : -1;
}

/* Polls cond (an expression) for up to ms. */
#define WAIT_FOR(cond, ms)                                                     \
	({                                                                     \
		int ok_ = 0;                                                   \
		for (int i_ = 0; i_ <= (ms) / 20; i_++) {                      \
			if ((cond)) {                                          \
				ok_ = 1;                                       \
				break;                                         \
			}                                                      \
			usleep(20000);                                         \
		}                                                              \
		ok_;                                                           \
	})

/* ---- listing and attributes -------------------------------------------- */

/* The reference encoding of keys/ names (see fuse/keyname.c). */
static void key_name(const char *key, char *out)
{
	size_t n = strlen(key), o = 0;
	int dots = !strcmp(key, ".") || !strcmp(key, "..");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];
		if (!dots && c > 0x20 && c < 0x7f && c != '/' && c != '%' && !(c == '@' && i == 0))
			out[o++] = (char)c;
		else
			o += (size_t)sprintf(out + o, "%%%02X", c);
	}
	out[o] = 0;
	if (o > 255) {
		o = 0;
		out[o++] = '@';
		for (size_t i = 0; i < n; i++)
			o += (size_t)sprintf(out + o, "%02x", (unsigned char)key[i]);
		out[o] = 0;
	}
}

START_TEST(listing_and_attributes)
{
	struct l1_arena *a = attach();
	struct l1_obj c;
	struct l1_obj_info ia, ic;
	struct l1_vm_space vm;
	struct stat st, sk;
	char buf[4096], name[512], target[256];
	const char *key = "t1/a b%c";

	uint64_t ida = publish_elsewhere(key, 10000, 11, 0);
	uint64_t idb = publish_elsewhere(NULL, 4096, 12, 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 4096, 1, &c), 0);
	ck_assert_int_eq(l1_obj_info(a, ida, &ia), 0);
	ck_assert_int_eq(l1_obj_info(a, c.id, &ic), 0);
	ck_assert_int_eq(l1_get_vm_space(a, &vm), 0);

	ck_assert(dir_has(P("objects"), idstr(ida)));
	ck_assert(dir_has(P("objects"), idstr(idb)));
	ck_assert(dir_has(P("objects"), idstr(c.id)));
	ck_assert(dir_has(P("meta"), idstr(ida)));

	ck_assert_int_eq(stat(P("objects/%s", idstr(ida)), &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	/* st_size is the data size (10000), st_blocks the whole block */
	ck_assert_int_eq(ia.obj.data_size, 10000);
	ck_assert_int_eq((uint64_t)st.st_size, ia.obj.data_size);
	ck_assert_int_eq((uint64_t)st.st_blocks, ia.obj.size / 512);
	ck_assert_int_eq(st.st_mode & 07777, 0400);        /* published: read-only */
	ck_assert_int_eq(st.st_uid, ia.uid);
	ck_assert_int_eq(st.st_gid, ia.gid);
	ck_assert_int_eq((uint64_t)st.st_mtim.tv_sec, ia.publish_ns / 1000000000ull);
	ck_assert_int_eq((uint64_t)st.st_mtim.tv_nsec, ia.publish_ns % 1000000000ull);
	ck_assert_int_eq((uint64_t)st.st_ctim.tv_sec, ia.ctime_ns / 1000000000ull);
	ck_assert_int_eq(stat(P("objects/%s", idstr(c.id)), &sk), 0);
	ck_assert_int_eq(sk.st_mode & 07777, 0600);        /* unpublished: writable */
	ck_assert(sk.st_ino != st.st_ino);

	/* keys/: a symlink to ../objects/ID, under the encoded name */
	key_name(key, name);
	ck_assert_str_eq(name, "t1%2Fa%20b%25c");
	ck_assert(dir_has(P("keys"), name));
	ssize_t n = readlink(P("keys/%s", name), target, sizeof target - 1);
	ck_assert_int_ge(n, 0);
	target[n] = 0;
	snprintf(buf, sizeof buf, "../objects/%s", idstr(ida));
	ck_assert_str_eq(target, buf);
	ck_assert_int_eq(lstat(P("keys/%s", name), &sk), 0);
	ck_assert(S_ISLNK(sk.st_mode));
	ck_assert_int_eq(stat(P("keys/%s", name), &sk), 0);
	ck_assert_int_eq(sk.st_ino, st.st_ino);
	ck_assert(!dir_has(P("keys"), idstr(idb)));

	/* meta/ID as text */
	ck_assert_int_gt(slurp(P("meta/%s", idstr(ida)), buf, sizeof buf), 0);
	ck_assert_msg(strstr(buf, "state:       published\n"), "%s", buf);
	ck_assert_msg(strstr(buf, "key:         t1/a b%c\n"), "%s", buf);
	ck_assert_msg(strstr(buf, "layout:      [10000]:uint8\n"), "%s", buf);
	snprintf(name, sizeof name, "offset:      %" PRIu64 "\n", ia.obj.offset);
	ck_assert_msg(strstr(buf, name), "%s", buf);

	/* the same as extended attributes, on the object and through the key */
	const char *po = P("objects/%s", idstr(ida));
	xattr_is(po, "user.l1.id", idstr(ida));
	xattr_is(po, "user.l1.state", "published");
	xattr_is(po, "user.l1.key", key);
	xattr_is(po, "user.l1.layout", "[10000]:uint8");
	xattr_is(po, "user.l1.offset", idstr(ia.obj.offset));
	xattr_is(po, "user.l1.owner_pid", idstr((uint64_t)ia.owner_pid));
	xattr_is(po, "user.l1.pool", idstr(vm.pool_id));
	xattr_is(P("keys/t1%%2Fa%%20b%%25c"), "user.l1.id", idstr(ida));
	ck_assert_int_gt(getxattr(po, "user.l1.ctime", buf, sizeof buf), 10);
	n = listxattr(po, buf, sizeof buf);
	ck_assert_int_gt(n, 0);
	static const char *want[] = { "user.l1.layout", "user.l1.offset", "user.l1.state",
				      "user.l1.owner_pid", "user.l1.key", "user.l1.ctime",
				      "user.l1.id", "user.l1.pool" };
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		int found = 0;
		for (char *s = buf; s < buf + n; s += strlen(s) + 1)
			found |= !strcmp(s, want[i]);
		ck_assert_msg(found, "listxattr lacks %s", want[i]);
	}
	xattr_is(P("objects/%s", idstr(c.id)), "user.l1.state", "allocated");
	ck_assert_int_eq(getxattr(P("objects/%s", idstr(c.id)), "user.l1.key", buf, sizeof buf), -1);
	ck_assert_int_eq(errno, ENODATA);

	/* names that are not objects */
	ck_assert_int_eq(stat(P("objects/0%s", idstr(ida)), &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(stat(P("objects/%s", idstr(ia.obj.id & 0xffffffffull)), &st), -1);
	ck_assert_int_eq(stat(P("objects/%s", idstr(ida + (1ull << 32))), &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(stat(P("objects/abc"), &st), -1);
	ck_assert_int_eq(stat(P("keys/no-such-key"), &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	l1_free(a, &c, 1);
	l1_arena_close(a);
}
END_TEST

START_TEST(odd_keys)
{
	char k1[L1_KEY_MAX + 1], name[600], want[64];
	const char *keys[] = { ".", "..", "@home", "a@b", "%41", "tab\there", "\x01\x7f", "é", k1 };
	memset(k1, 0xff, L1_KEY_MAX);
	k1[L1_KEY_MAX] = 0;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		uint64_t id = publish_elsewhere(keys[i], 4096, i, 0);
		char target[64];
		key_name(keys[i], name);
		ck_assert_int_le(strlen(name), 255);
		ck_assert_msg(dir_has(P("keys"), name), "keys/ lacks %s", name);
		ssize_t n = readlink(P("keys/%s", name), target, sizeof target - 1);
		ck_assert_int_ge(n, 0);
		target[n] = 0;
		snprintf(want, sizeof want, "../objects/%s", idstr(id));
		ck_assert_str_eq(target, want);
		xattr_is(P("keys/%s", name), "user.l1.key", keys[i]);
	}
	key_name(k1, name);
	ck_assert_int_eq(name[0], '@');
	/* a non-canonical spelling of an existing key is not a name */
	struct stat st;
	ck_assert_int_eq(lstat(P("keys/%%61%%40b"), &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(lstat(P("keys/a%%40b"), &st), -1);
	ck_assert_int_eq(lstat(P("keys/a@b"), &st), 0);
}
END_TEST

/* ---- bytes ------------------------------------------------------------- */

START_TEST(read_and_mmap_by_path)
{
	const uint64_t size = 3 * MiB + 4096;
	uint64_t id = publish_elsewhere("bytes", size, 77, 0);
	const char *path = P("objects/%s", idstr(id));
	struct stat st;
	int fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq((uint64_t)st.st_size, size);

	char *buf = malloc(size);
	size_t got = 0;
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		ck_assert_int_gt(r, 0);
		got += (size_t)r;
	}
	ck_assert_int_eq(read(fd, buf, 1), 0);
	ck_assert_msg(l1t_check(buf, size, 77), "read() bytes differ from the writer's");
	/* an unaligned pread in the middle */
	char part[100];
	ck_assert_int_eq(pread(fd, part, 100, 1000003), 100);
	ck_assert(memcmp(part, buf + 1000003, 100) == 0);

	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_msg(m != MAP_FAILED, "mmap: %s", strerror(errno));
	ck_assert_msg(l1t_check(m, size, 77), "mmap bytes differ from the writer's");
	munmap(m, size);
	m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	ck_assert(m != MAP_FAILED);
	ck_assert(l1t_check(m, size, 77));
	munmap(m, size);
	/* a published object cannot be mapped for writing */
	ck_assert(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
	close(fd);

	/* and through its key */
	fd = open(P("keys/bytes"), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert(m != MAP_FAILED);
	ck_assert(l1t_check(m, size, 77));
	munmap(m, size);
	close(fd);
	free(buf);
}
END_TEST

START_TEST(appears_and_vanishes)
{
	struct stat st;
	uint64_t id = publish_elsewhere("comes-and-goes", 8192, 5, 0);
	/* no waiting: nothing negative is cached */
	ck_assert(dir_has(P("objects"), idstr(id)));
	ck_assert(dir_has(P("keys"), "comes-and-goes"));
	ck_assert_int_eq(stat(P("objects/%s", idstr(id)), &st), 0);
	ck_assert_int_eq(stat(P("keys/comes-and-goes"), &st), 0);
	ck_assert_int_eq(stat(P("meta/%s", idstr(id)), &st), 0);

	free_elsewhere(id);
	/* listings are taken fresh */
	ck_assert(!dir_has(P("objects"), idstr(id)));
	ck_assert(!dir_has(P("keys"), "comes-and-goes"));
	ck_assert(!dir_has(P("meta"), idstr(id)));
	/* cached names go within a reaper pass (0.3 s here), not the timeout */
	ck_assert(WAIT_FOR(stat(P("objects/%s", idstr(id)), &st) == -1 && errno == ENOENT, 3000));
	ck_assert(WAIT_FOR(stat(P("keys/comes-and-goes"), &st) == -1 && errno == ENOENT, 3000));
	ck_assert(WAIT_FOR(open(P("meta/%s", idstr(id)), O_RDONLY) == -1 && errno == ENOENT, 3000));
	ck_assert_int_eq(open(P("objects/%s", idstr(id)), O_RDONLY), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* ---- writes ------------------------------------------------------------ */

START_TEST(writes_only_before_publish)
{
	struct l1_arena *a = attach();
	struct l1_obj o;
	struct stat st;
	char buf[64];
	ck_assert_int_eq(l1_alloc_bytes(a, 8192, 1, &o), 0);
	const char *path = P("objects/%s", idstr(o.id));

	/* the owner writes into its unpublished object through the view */
	int fd = open(path, O_WRONLY);
	ck_assert_msg(fd >= 0, "open for write: %s", strerror(errno));
	ck_assert_int_eq(pwrite(fd, "hello view", 10, 100), 10);
	ck_assert(memcmp((char *)o.ptr + 100, "hello view", 10) == 0);
	ck_assert_int_eq(pwrite(fd, "0123456789", 10, 8190), 2);     /* cut at the end */
	ck_assert(memcmp((char *)o.ptr + 8190, "01", 2) == 0);
	ck_assert_int_eq(pwrite(fd, "x", 1, 8192), -1);
	ck_assert_int_eq(errno, EFBIG);
	/* O_TRUNC (what `>` does) is accepted: the object keeps its size */
	int fd2 = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd2, 0);
	close(fd2);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 8192);
	ck_assert_int_eq(truncate(path, 100), -1);
	ck_assert_int_eq(errno, EINVAL);

	/* a reader caches the unpublished bytes; the writer changes them in
	 * its own mapping and publishes: the next open must see the new ones */
	int rfd = open(path, O_RDONLY);
	ck_assert_int_ge(rfd, 0);
	ck_assert_int_eq(pread(rfd, buf, 10, 100), 10);
	ck_assert(memcmp(buf, "hello view", 10) == 0);
	close(rfd);
	memcpy((char *)o.ptr + 100, "HELLO VIEW", 10);
	ck_assert_int_eq(l1_publish(a, o.id, NULL), 0);
	rfd = open(path, O_RDONLY);
	ck_assert_int_eq(pread(rfd, buf, 10, 100), 10);
	ck_assert_msg(memcmp(buf, "HELLO VIEW", 10) == 0, "stale page cache after publish");
	close(rfd);

	/* published: the open handle and new opens cannot write */
	ck_assert_int_eq(pwrite(fd, "late", 4, 0), -1);
	ck_assert_int_eq(errno, EROFS);
	close(fd);
	ck_assert_int_eq(open(path, O_WRONLY), -1);
	ck_assert_msg(errno == EROFS || errno == EACCES, "open published for write: %s",
		      strerror(errno));
	ck_assert_int_eq(open(path, O_RDWR), -1);
	ck_assert_int_eq(truncate(path, 0), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0222, 0);
	l1_free(a, &o, 1);
	l1_arena_close(a);
}
END_TEST

/* Checks that switch to nobody need root (and the allow_other mount). */
#define NEEDS_ROOT()                                                              \
	do {                                                                      \
		if (getuid() != 0) {                                              \
			printf("check_fuse: %s skipped: needs root\n", __func__);  \
			return;                                                   \
		}                                                                 \
	} while (0)

START_TEST(writing_another_owners_object)
{
	NEEDS_ROOT();
	struct l1_arena *a = attach();
	struct l1_obj o;
	ck_assert_int_eq(l1_alloc_bytes(a, 4096, 1, &o), 0);
	ck_assert_int_eq(l1_obj_chmod(a, o.id, 0, 0, 0666), 0);
	const char *path = P("objects/%s", idstr(o.id));
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			_exit(10);
		int fd = open(path, O_RDONLY);      /* mode lets it read */
		if (fd < 0)
			_exit(1);
		close(fd);
		fd = open(path, O_WRONLY);          /* but only the owner writes */
		_exit(fd < 0 && errno == EACCES ? 0 : 2);
	}
	ck_assert_int_eq(l1t_wait(pid), 0);
	l1_free(a, &o, 1);
	l1_arena_close(a);
}
END_TEST

/* ---- rm ---------------------------------------------------------------- */

START_TEST(rm_frees)
{
	struct l1_arena *a = attach();
	uint64_t e = publish_elsewhere("rm-e", 4096, 1, 0);
	uint64_t f = publish_elsewhere("rm-f", 4096, 2, 0);
	ck_assert_int_eq(unlink(P("objects/%s", idstr(e))), 0);
	ck_assert_msg(state_of(a, e) == -1 || state_of(a, e) == L1_STATE_DIRTY,
		      "after rm the object is %d", state_of(a, e));
	ck_assert(!dir_has(P("objects"), idstr(e)));
	ck_assert(!dir_has(P("keys"), "rm-e"));
	ck_assert_int_eq(unlink(P("keys/rm-f")), 0);
	ck_assert(state_of(a, f) == -1 || state_of(a, f) == L1_STATE_DIRTY);
	ck_assert_int_eq(unlink(P("objects/%s", idstr(e))), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(unlink(P("objects/123")), -1);
	ck_assert_int_eq(errno, ENOENT);
	uint64_t g = publish_elsewhere(NULL, 4096, 3, 0);
	ck_assert_int_eq(unlink(P("meta/%s", idstr(g))), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(unlink(P("stats")), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(state_of(a, g), L1_STATE_PUBLISHED);
	l1_arena_close(a);
}
END_TEST

/* ---- holds ------------------------------------------------------------- */

/* Takes all free memory in 64 KiB objects (and gives it back). */
static void churn(struct l1_arena *a, uint64_t forbidden_off, uint64_t forbidden_len)
{
	struct l1_obj o[64];
	uint64_t n = 0;
	struct l1_obj *all = malloc(4096 * sizeof *all);
	while (n < 4096 && l1_alloc_bytes(a, 64 * 1024, 1, &o[0]) == 0) {
		ck_assert_msg(o[0].offset + o[0].size <= forbidden_off ||
			      o[0].offset >= forbidden_off + forbidden_len,
			      "memory of a held object was handed out again");
		memset(o[0].ptr, 0xEE, o[0].size);
		all[n++] = o[0];
	}
	ck_assert_int_eq(l1_free(a, all, (uint32_t)n), 0);
	free(all);
}

START_TEST(open_file_holds_its_object)
{
	struct l1_arena *a = attach();
	struct l1_obj_info oi;
	const uint64_t size = 1 * MiB;
	uint64_t id = publish_elsewhere("held", size, 9, 0);
	ck_assert_int_eq(l1_obj_info(a, id, &oi), 0);
	const char *path = P("objects/%s", idstr(id));

	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(holds_of(a, id), 1);
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert(m != MAP_FAILED);
	int fd2 = open(path, O_RDONLY);         /* for reads after the free */
	close(fd);                              /* the mapping keeps it */

	ck_assert_int_eq(l1_free_ids(a, &id, 1), 0);
	ck_assert_int_eq(state_of(a, id), L1_STATE_DOOMED);
	ck_assert(!dir_has(P("objects"), idstr(id)));
	churn(a, oi.obj.offset, oi.obj.size);
	l1_arena_flush(a, 5000);

	/* the reader keeps the bytes the writer wrote: never someone else's */
	char *buf = malloc(size);
	ck_assert_int_eq(pread(fd2, buf, size, 0), (ssize_t)size);
	ck_assert(l1t_check(buf, size, 9));
	posix_fadvise(fd2, 0, 0, POSIX_FADV_DONTNEED);  /* refetch from the daemon */
	ck_assert_int_eq(pread(fd2, buf, size, 0), (ssize_t)size);
	ck_assert(l1t_check(buf, size, 9));
	ck_assert(l1t_check(m, size, 9));
	struct stat st;     /* like an unlinked file, once the attr cache expires */
	ck_assert(WAIT_FOR(fstat(fd2, &st) == 0 && st.st_nlink == 0, 3000));
	close(fd2);
	ck_assert_int_eq(state_of(a, id), L1_STATE_DOOMED);     /* still mapped */
	ck_assert(l1t_check(m, size, 9));
	munmap(m, size);
	/* the last reference went: released, so freed (zeroed, then reusable) */
	ck_assert(WAIT_FOR(state_of(a, id) == -1 || state_of(a, id) == L1_STATE_DIRTY, 5000));
	free(buf);
	l1_arena_close(a);
}
END_TEST


/* ---- liveness across namespaces ------------------------------------------ */

/* The view collects every 0.3 s here: a writer and a holder in their own
 * PID namespace keep their object and hold through many passes (the view's
 * /proc says PID 1 is init), and once dead the view reclaims them. */
START_TEST(namespaced_writer_survives_view_gc)
{
	char why[256];
	struct l1_arena *a = attach();
	uint64_t hid = publish_elsewhere("nsheld", 65536, 12, 0);
	struct l1_obj_info hi;
	ck_assert_int_eq(l1_obj_info(a, hid, &hi), 0);
	struct l1t_ns_writer w = { .path = V.pool, .held_key = "nsheld", .held_seed = 12,
				   .own_seed = 41 };
	pid_t k = l1t_ns_writer_start(&w, why, sizeof why);
	if (k < 0) {
		printf("SKIP namespaced_writer_survives_view_gc: %s\n", why);
		l1_arena_close(a);
		return;
	}
	uint64_t id = w.id;
	usleep(1500000);        /* five passes of the view's gc */
	ck_assert_int_eq(state_of(a, id), L1_STATE_ALLOCATED);
	ck_assert_uint_eq(holds_of(a, hid), 1);
	ck_assert_int_eq(l1_free_ids(a, &hid, 1), 0);
	ck_assert_int_eq(state_of(a, hid), L1_STATE_DOOMED);
	churn(a, hi.obj.offset, hi.obj.size);
	usleep(1000000);
	ck_assert_int_eq(state_of(a, hid), L1_STATE_DOOMED);
	ck_assert_int_eq(state_of(a, id), L1_STATE_ALLOCATED);
	ck_assert_int_eq(l1t_ns_writer_finish(&w, k), 0);
	/* dead now: the view's next passes take its object and its hold */
	ck_assert(WAIT_FOR(state_of(a, id) != L1_STATE_ALLOCATED, 5000));
	ck_assert(WAIT_FOR(state_of(a, hid) != L1_STATE_DOOMED, 5000));
	l1_arena_close(a);
}
END_TEST

/* ---- permissions ------------------------------------------------------- */

START_TEST(nobody_is_refused)
{
	NEEDS_ROOT();
	uint64_t secret = publish_elsewhere("secret", 4096, 21, 0600);
	uint64_t open_ = publish_elsewhere("public", 4096, 22, 0644);
	const char *ps = P("objects/%s", idstr(secret));
	const char *pp = P("objects/%s", idstr(open_));
	const char *stats = P("stats");
	const char *objs = P("objects");
	const char *ms = P("meta/%s", idstr(secret)), *mp = P("meta/%s", idstr(open_));
	pid_t pid = fork();
	if (pid == 0) {
		char buf[4096], v[64];
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			_exit(10);
		if (open(ps, O_RDONLY) != -1 || errno != EACCES)
			_exit(1);
		if (getxattr(ps, "user.l1.id", v, sizeof v) != -1 || errno != EACCES)
			_exit(2);
		int fd = open(pp, O_RDONLY);
		if (fd < 0 || pread(fd, buf, 4096, 0) != 4096 || !l1t_check(buf, 4096, 22))
			_exit(3);
		close(fd);
		if (open(pp, O_WRONLY) != -1 || errno != EACCES)
			_exit(4);
		if (unlink(pp) != -1 || errno != EPERM)          /* sticky objects/ */
			_exit(5);
		if (unlink(ps) != -1 || errno != EPERM)
			_exit(6);
		if (slurp(stats, buf, sizeof buf) <= 0)
			_exit(7);
		if (!dir_has(objs, idstr(secret)))               /* names are public */
			_exit(8);
		if (mkdir(P("mine"), 0755) != -1 || errno != EACCES)
			_exit(9);
		/* the record needs what the bytes need */
		if (open(ms, O_RDONLY) != -1 || errno != EACCES)
			_exit(11);
		if (slurp(mp, buf, sizeof buf) <= 0 || !strstr(buf, "key:"))
			_exit(12);
		_exit(0);
	}
	int rc = l1t_wait(pid);
	ck_assert_msg(rc == 0, "nobody check %d failed", rc);
	struct l1_arena *a = attach();
	ck_assert_int_eq(state_of(a, secret), L1_STATE_PUBLISHED);
	ck_assert_int_eq(state_of(a, open_), L1_STATE_PUBLISHED);
	l1_arena_close(a);
}
END_TEST

/* ---- l1_open_path ------------------------------------------------------ */

START_TEST(open_path_zero_copy)
{
	struct l1_arena *a = attach();
	struct l1_vm_space vm;
	struct l1_obj o, o2;
	const uint64_t size = 2 * MiB;
	uint64_t id = publish_elsewhere("by-path", size, 33, 0);
	ck_assert_int_eq(l1_get_vm_space(a, &vm), 0);

	int r = l1_open_path(a, P("objects/%s", idstr(id)), &o);
	ck_assert_msg(r == 0, "l1_open_path: %s", l1_last_error());
	ck_assert_int_eq(o.id, id);
	ck_assert_int_eq(o.size, size);
	/* zero-copy: a pointer into this process's own mapping of the pool */
	ck_assert((char *)o.ptr >= (char *)vm.base);
	ck_assert((char *)o.ptr + o.size <= (char *)vm.base + vm.size);
	ck_assert_ptr_eq(o.ptr, (char *)vm.base + o.offset);
	ck_assert(l1t_check(o.ptr, size, 33));
	ck_assert_int_ge(holds_of(a, id), 1);

	ck_assert_int_eq(l1_open_path(a, P("keys/by-path"), &o2), 0);
	ck_assert_ptr_eq(o2.ptr, o.ptr);
	ck_assert_int_eq(l1_release(a, id), 0);
	ck_assert_int_eq(l1_release(a, id), 0);
	ck_assert(WAIT_FOR(holds_of(a, id) == 0, 2000));

	/* a hold means a free waits for the release */
	ck_assert_int_eq(l1_open_path(a, P("objects/%s", idstr(id)), &o), 0);
	free_elsewhere(id);
	ck_assert_int_eq(state_of(a, id), L1_STATE_DOOMED);
	ck_assert(l1t_check(o.ptr, size, 33));
	ck_assert_int_eq(l1_release(a, id), 0);
	ck_assert(state_of(a, id) != L1_STATE_DOOMED);

	/* errors */
	ck_assert_int_eq(l1_open_path(a, P("objects/%s", idstr(id)), &o), -ENOENT);
	ck_assert_int_eq(l1_open_path(a, P("stats"), &o), -EINVAL);
	ck_assert_int_eq(l1_open_path(a, "/tmp", &o), -EINVAL);
	ck_assert_int_eq(l1_open_path(a, NULL, &o), -EINVAL);
	uint64_t other = publish_elsewhere("elsewhere", 4096, 1, 0);
	struct l1_arena *b = l1t_create("fuse-other", 16 * MiB);
	r = l1_open_path(b, P("objects/%s", idstr(other)), &o);
	ck_assert_msg(r == -EXDEV, "foreign pool: %d %s", r, l1_last_error());
	l1t_destroy(b);
	l1_arena_close(a);
}
END_TEST


/* A read-only handle cannot write a hold into the pool: it holds through
 * the view (l1_open_path keeps the view's file open), zero-copy from its
 * own PROT_READ mapping; a free meanwhile waits for l1_release, and close
 * lets go of what it still holds. */
START_TEST(read_only_holds_through_view)
{
	struct l1_arena *a = attach(), *ro;
	struct l1_open_opts op;
	struct l1_vm_space vm;
	struct l1_obj o;
	const uint64_t size = 1 * MiB;
	l1_open_opts_init(&op);
	op.pin = L1_PIN_OFF;
	op.readonly = 1;
	ck_assert_int_eq(l1_arena_open(V.pool, &op, &ro), 0);
	ck_assert_int_eq(l1_get_vm_space(ro, &vm), 0);
	uint64_t id = publish_elsewhere("ro-held", size, 44, 0);
	ck_assert_int_eq(l1_hold(ro, id, &o), -EPERM);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "through the view"));

	int r = l1_open_path(ro, P("keys/ro-held"), &o);
	ck_assert_msg(r == 0, "read-only l1_open_path: %s", l1_last_error());
	ck_assert_uint_eq(o.id, id);
	ck_assert_ptr_eq(o.ptr, (char *)vm.base + o.offset);
	ck_assert(l1t_check(o.ptr, size, 44));
	ck_assert_int_ge(holds_of(a, id), 1);           /* the view's hold */
	free_elsewhere(id);
	ck_assert_int_eq(state_of(a, id), L1_STATE_DOOMED);
	churn(a, o.offset, o.size);
	ck_assert(l1t_check(o.ptr, size, 44));
	ck_assert_int_eq(l1_release(ro, id), 0);
	ck_assert(WAIT_FOR(state_of(a, id) != L1_STATE_DOOMED, 3000));
	ck_assert_int_eq(l1_release(ro, id), -EINVAL);  /* holds nothing now */

	uint64_t id2 = publish_elsewhere("ro-kept", 4096, 45, 0);
	ck_assert_int_eq(l1_open_path(ro, P("objects/%s", idstr(id2)), &o), 0);
	ck_assert_int_ge(holds_of(a, id2), 1);
	l1_arena_close(ro);                             /* lets go of it */
	ck_assert(WAIT_FOR(holds_of(a, id2) == 0, 3000));
	free_elsewhere(id2);
	l1_arena_close(a);
}
END_TEST

/* ---- generated files --------------------------------------------------- */

static uint64_t stats_published(void)
{
	char buf[8192];
	unsigned long long alloc, pub;
	ck_assert_int_gt(slurp(P("stats"), buf, sizeof buf), 0);
	char *l = strstr(buf, "\nobjects ");
	ck_assert_msg(l, "%s", buf);
	ck_assert_int_eq(sscanf(l, "\nobjects %llu allocated, %llu published", &alloc, &pub), 2);
	return pub;
}

START_TEST(stats_fresh_each_read)
{
	char buf[16384];
	uint64_t before = stats_published();
	publish_elsewhere(NULL, 4096, 1, 0);
	ck_assert_int_eq(stats_published(), before + 1);
	ck_assert_int_gt(slurp(P("stats"), buf, sizeof buf), 0);
	static const char *fields[] = { "used ", "committed ", "dirty ", "largest free ",
					"backing ", "huge page", "growth ", "zeroing ",
					"clients " };
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		ck_assert_msg(strstr(buf, fields[i]), "stats lacks '%s':\n%s", fields[i], buf);
	ck_assert(strstr(buf, "%)"));

	/* clients lists this process once it attaches */
	struct l1_arena *a = attach();
	char me[32];
	snprintf(me, sizeof me, "\n%-8d %-6u ", getpid(), (unsigned)geteuid());  /* pid, uid */
	ck_assert_int_gt(slurp(P("clients"), buf, sizeof buf), 0);
	ck_assert_msg(strstr(buf, me), "clients lacks %d:\n%s", getpid(), buf);
	ck_assert(strstr(buf, "PIN"));
	l1_arena_close(a);
}
END_TEST

START_TEST(metrics_format)
{
	static char buf[65536];
	char help[64][96], type[64][96];
	int nh = 0, nt = 0, samples = 0;
	ck_assert_int_gt(slurp(P("metrics"), buf, sizeof buf), 0);
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
		char name[96], kind[32];
		if (!strncmp(l, "# HELP ", 7)) {
			ck_assert_int_eq(sscanf(l + 7, "%95s", name), 1);
			ck_assert(nh < 64);
			snprintf(help[nh++], 96, "%s", name);
		} else if (!strncmp(l, "# TYPE ", 7)) {
			ck_assert_int_eq(sscanf(l + 7, "%95s %31s", name, kind), 2);
			ck_assert(!strcmp(kind, "gauge") || !strcmp(kind, "counter"));
			size_t n = strlen(name);
			int total = n > 6 && !strcmp(name + n - 6, "_total");
			ck_assert_msg(total == !strcmp(kind, "counter"), "%s %s", name, kind);
			ck_assert(nt < 64);
			snprintf(type[nt++], 96, "%s", name);
		} else {
			ck_assert_msg(!strncmp(l, "l1arena_", 8), "bad line: %s", l);
			size_t n = strcspn(l, "{ ");
			/* every series names its pool: several pools, one node_exporter */
			ck_assert_msg(!strncmp(l + n, "{pool=\"", 7), "no pool label: %s", l);
			ck_assert(n < 96);
			memcpy(name, l, n);
			name[n] = 0;
			ck_assert_msg(nt > 0 && !strcmp(type[nt - 1], name), "%s without TYPE", name);
			ck_assert_msg(nh > 0 && !strcmp(help[nh - 1], name), "%s without HELP", name);
			char *v = strrchr(l, ' ');
			char *end;
			strtod(v + 1, &end);
			ck_assert_msg(*end == 0, "bad value in %s", l);
			samples++;
		}
	}
	ck_assert_int_eq(nh, nt);
	ck_assert_int_gt(samples, 20);
}
END_TEST

/* ---- errnos ------------------------------------------------------------ */

START_TEST(shell_errnos)
{
	uint64_t id = publish_elsewhere("errnos", 4096, 1, 0);
	char po[1024];
	snprintf(po, sizeof po, "%s", P("objects/%s", idstr(id)));
#define FAILS(call, err)                                                              \
	do {                                                                          \
		errno = 0;                                                            \
		ck_assert_msg((call) == -1 && errno == (err), "%s: %s, want %s", #call, \
			      strerror(errno), strerror(err));                        \
	} while (0)
	FAILS(mkdir(P("objects/d"), 0755), EPERM);
	FAILS(open(P("objects/new"), O_CREAT | O_WRONLY, 0644), EPERM);
	FAILS(mknod(P("objects/n"), S_IFREG | 0644, 0), EPERM);
	FAILS(symlink("x", P("keys/new")), EPERM);
	FAILS(link(po, P("objects/1")), EPERM);
	FAILS(rename(po, P("objects/2")), EPERM);
	FAILS(rmdir(P("objects")), EPERM);
	FAILS(open(P("stats"), O_WRONLY), EACCES);
	FAILS(open(P("meta/%s", idstr(id)), O_RDWR), EACCES);
	FAILS(truncate(po, 0), EROFS);
	FAILS(setxattr(po, "user.l1.id", "1", 1, 0), EPERM);
	FAILS(setxattr(po, "user.other", "1", 1, 0), ENOTSUP);
	FAILS(removexattr(po, "user.l1.id"), EPERM);
	FAILS(getxattr(po, "user.nothing", NULL, 0), ENODATA);
	char small[2];
	FAILS(getxattr(po, "user.l1.id", small, sizeof small), ERANGE);
	FAILS(opendir(po) ? 0 : -1, ENOTDIR);
	FAILS(open(P("nothing"), O_RDONLY), ENOENT);
	FAILS(open(P("objects/%s/x", idstr(id)), O_RDONLY), ENOTDIR);
	int fd = open(P("objects"), O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	FAILS((int)read(fd, small, 1), EISDIR);
	close(fd);
	fd = open(po, O_RDONLY);
	FAILS(fallocate(fd, 0, 0, 4096), EBADF);
	FAILS((int)write(fd, "x", 1), EBADF);
	close(fd);
	struct statvfs sv;
	ck_assert_int_eq(statvfs(V.mnt, &sv), 0);
	ck_assert_int_gt(sv.f_blocks, 0);
#undef FAILS
}
END_TEST

/* ---- abuse ------------------------------------------------------------- */

START_TEST(flood_of_opens)
{
	struct l1_arena *a = attach();
	struct rlimit rl;
	uint64_t id = publish_elsewhere("flood", 4096, 4, 0);
	const char *path = P("objects/%s", idstr(id));
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
	setrlimit(RLIMIT_NOFILE, &rl);
	int n = (int)rl.rlim_cur - 64;
	int *fds = calloc((size_t)n, sizeof *fds);
	for (int i = 0; i < n; i++) {
		fds[i] = open(path, O_RDONLY);
		ck_assert_msg(fds[i] >= 0, "open #%d: %s", i, strerror(errno));
	}
	ck_assert_int_ge(holds_of(a, id), (uint32_t)n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	ck_assert(WAIT_FOR(holds_of(a, id) == 0, 5000));
	/* opening and closing from many processes at once */
	pid_t kids[8];
	for (int k = 0; k < 8; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			char b[64];
			for (int i = 0; i < 300; i++) {
				int fd = open(path, O_RDONLY);
				if (fd < 0 || pread(fd, b, sizeof b, 0) != sizeof b)
					_exit(1);
				close(fd);
				if (slurp(P("stats"), b, sizeof b) <= 0)
					_exit(2);
			}
			_exit(0);
		}
	}
	for (int k = 0; k < 8; k++)
		ck_assert_int_eq(l1t_wait(kids[k]), 0);
	ck_assert(WAIT_FOR(holds_of(a, id) == 0, 5000));
	free(fds);
	l1_arena_close(a);
}
END_TEST

START_TEST(readers_killed_mid_read)
{
	struct l1_arena *a = attach();
	const uint64_t size = 4 * MiB;
	uint64_t id = publish_elsewhere("killed", size, 6, 0);
	const char *path = P("objects/%s", idstr(id));
	for (int round = 0; round < 20; round++) {
		pid_t pid = fork();
		if (pid == 0) {
			char *buf = malloc(size);
			for (;;) {
				int fd = open(path, O_RDONLY);
				if (fd < 0)
					_exit(1);
				posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
				if (pread(fd, buf, size, 0) < 0)
					_exit(2);
				void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
				if (m == MAP_FAILED)
					_exit(3);
				for (uint64_t off = 0; off < size; off += 4096)
					(void)((volatile char *)m)[off];
				munmap(m, size);
				close(fd);
			}
		}
		usleep(1000 + (useconds_t)(random() % 20000));
		kill(pid, SIGKILL);
		ck_assert_int_eq(l1t_wait(pid), 128 + SIGKILL);
	}
	ck_assert(WAIT_FOR(holds_of(a, id) == 0, 5000));
	char buf[64];
	ck_assert_int_gt(slurp(P("stats"), buf, sizeof buf), 0);     /* daemon alive */
	l1t_memcheck_clean(a);
	l1_arena_close(a);
}
END_TEST

/* ---- the daemon's life (own mounts) ------------------------------------ */

static void own_mount(struct view *v, const char *opts)
{
	memset(v, 0, sizeof *v);
	make_pool(v->pool, sizeof v->pool, "fuse-life", 32 * MiB);
	snprintf(v->mnt, sizeof v->mnt, "/tmp/l1fs-life-%d.XXXXXX", (int)runner);
	ck_assert(mkdtemp(v->mnt) != NULL);
	v->pid = spawn_l1fs(v->mnt, v->pool, opts);
	if (v->pid <= 0 || !wait_mounted(v->mnt, v->pid)) {
		stop_l1fs(v->mnt, v->pid);
		rmdir(v->mnt);
		l1_arena_destroy(v->pool, 1);
		ck_abort_msg("l1fs did not mount %s", v->mnt);
	}
}

/* After the life tests (in the runner): whatever a failed test left mounted
 * under its name, and the directories. */
static void life_sweep(void)
{
	char line[4096], m[2048], prefix[64];
	int n = snprintf(prefix, sizeof prefix, "/tmp/l1fs-life-%d.", (int)runner);
	FILE *f = fopen("/proc/self/mountinfo", "re");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "%*s %*s %*s %*s %2047s", m) == 1 && !strncmp(m, prefix, (size_t)n))
			umount2(m, MNT_DETACH);
	if (f)
		fclose(f);
	DIR *d = opendir("/tmp");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		snprintf(m, sizeof m, "/tmp/%s", e->d_name);
		if (!strncmp(m, prefix, (size_t)n))
			rmdir(m);
	}
	if (d)
		closedir(d);
}

static void life_setup(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static void own_unmount(struct view *v)
{
	stop_l1fs(v->mnt, v->pid);
	rmdir(v->mnt);
	l1_arena_destroy(v->pool, 1);
}

START_TEST(clean_shutdown)
{
	struct view v;
	int sigs[] = { SIGINT, SIGTERM, 0 };
	for (int i = 0; i < 3; i++) {
		own_mount(&v, "gc_interval=0.2");
		if (sigs[i]) {
			kill(v.pid, sigs[i]);
		} else {
			char cmd[400];
			snprintf(cmd, sizeof cmd, "fusermount3 -u %s", v.mnt);
			ck_assert_int_eq(system(cmd), 0);
		}
		ck_assert_int_eq(wait_exit(v.pid, 10000), 0);
		ck_assert(!is_mounted(v.mnt));
		v.pid = 0;
		struct l1_arena *a;
		ck_assert_int_eq(l1_arena_open(v.pool, NULL, &a), 0);
		l1t_memcheck_clean(a);
		l1_arena_close(a);
		own_unmount(&v);
	}
}
END_TEST

START_TEST(unmount_while_busy)
{
	struct view v;
	struct l1_arena *a;
	struct l1_obj o;
	own_mount(&v, "gc_interval=0.2");
	ck_assert_int_eq(l1_arena_open(v.pool, NULL, &a), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, MiB, 1, &o), 0);
	l1t_fill(o.ptr, o.size, 8);
	ck_assert_int_eq(l1_publish(a, o.id, "busy"), 0);
	char path[512];
	snprintf(path, sizeof path, "%s/objects/%s", v.mnt, idstr(o.id));
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	void *m = mmap(NULL, MiB, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert(m != MAP_FAILED);
	ck_assert(l1t_check(m, MiB, 8));
	ck_assert_int_ge(holds_of(a, o.id), 1);

	/* a lazy unmount while a file is open and mapped: the daemon goes
	 * once the last user does; the mapping keeps what it had */
	char cmd[400];
	snprintf(cmd, sizeof cmd, "fusermount3 -u -z %s", v.mnt);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert(l1t_check(m, MiB, 8));
	char b[16];
	ck_assert_int_eq(pread(fd, b, sizeof b, 0), sizeof b);
	munmap(m, MiB);
	close(fd);
	ck_assert_int_eq(wait_exit(v.pid, 10000), 0);
	v.pid = 0;
	/* l1fs detached: its holds are gone, nothing leaked */
	ck_assert_int_eq(holds_of(a, o.id), 0);
	ck_assert_int_eq(state_of(a, o.id), L1_STATE_PUBLISHED);
	l1t_memcheck_clean(a);

	/* and a SIGTERM while a reader holds a file open */
	own_unmount(&v);
	l1_arena_close(a);
	own_mount(&v, "gc_interval=0.2");
	ck_assert_int_eq(l1_arena_open(v.pool, NULL, &a), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, MiB, 1, &o), 0);
	ck_assert_int_eq(l1_publish(a, o.id, NULL), 0);
	snprintf(path, sizeof path, "%s/objects/%s", v.mnt, idstr(o.id));
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	/* a SIGTERM while a reader holds a file open: unmounting would break
	 * the reader, so l1fs stays up until the file closes, then stops */
	kill(v.pid, SIGTERM);
	ck_assert_int_eq(wait_exit(v.pid, 500), -1);          /* still up */
	ck_assert_int_eq(pread(fd, b, sizeof b, 0), (ssize_t)sizeof b);
	close(fd);
	ck_assert_int_eq(wait_exit(v.pid, 10000), 0);
	v.pid = 0;
	ck_assert_int_eq(holds_of(a, o.id), 0);
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	own_unmount(&v);
}
END_TEST

START_TEST(crashed_daemon_leaves_pool_intact)
{
	struct view v;
	struct l1_arena *a;
	struct l1_obj o;
	struct l1_gc_result g;
	own_mount(&v, "gc_interval=0");
	ck_assert_int_eq(l1_arena_open(v.pool, NULL, &a), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 64 * 1024, 1, &o), 0);
	l1t_fill(o.ptr, o.size, 3);
	ck_assert_int_eq(l1_publish(a, o.id, "survivor"), 0);
	char path[512];
	snprintf(path, sizeof path, "%s/objects/%s", v.mnt, idstr(o.id));
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(holds_of(a, o.id), 1);

	kill(v.pid, SIGKILL);
	ck_assert_int_eq(wait_exit(v.pid, 5000), 128 + SIGKILL);
	v.pid = 0;
	char b[16];
	ck_assert_int_eq(pread(fd, b, sizeof b, 0), -1);
	ck_assert(errno == ENOTCONN || errno == EIO);
	close(fd);
	/* the pool does not care: gc drops the dead daemon's hold */
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_int_ge(g.holds_dropped, 1);
	ck_assert_int_eq(holds_of(a, o.id), 0);
	ck_assert_int_eq(state_of(a, o.id), L1_STATE_PUBLISHED);
	ck_assert(l1t_check(o.ptr, o.size, 3));
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	own_unmount(&v);        /* also detaches the dead mount */
	ck_assert(!is_mounted(v.mnt));
}
END_TEST

START_TEST(pool_destroyed_under_reader)
{
	struct view v;
	struct l1_arena *a;
	struct l1_obj o;
	char path[512], b[4096];
	own_mount(&v, "gc_interval=0.2");
	ck_assert_int_eq(l1_arena_open(v.pool, NULL, &a), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, MiB, 1, &o), 0);
	l1t_fill(o.ptr, o.size, 12);
	ck_assert_int_eq(l1_publish(a, o.id, "doomed-pool"), 0);
	l1_arena_close(a);
	snprintf(path, sizeof path, "%s/keys/doomed-pool", v.mnt);
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	void *m = mmap(NULL, MiB, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert(m != MAP_FAILED);
	ck_assert(l1t_check(m, 4096, 12));

	/* the pool file goes (forced: l1fs is attached); the view still maps
	 * it, so the reader keeps the writer's bytes, and the daemon lives */
	ck_assert_int_eq(l1_arena_destroy(v.pool, 1), 0);
	ck_assert(l1t_check(m, MiB, 12));
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	ck_assert_int_eq(pread(fd, b, sizeof b, 8192), (ssize_t)sizeof b);
	char want[4096 + 8192];
	l1t_fill(want, sizeof want, 12);
	ck_assert(memcmp(b, want + 8192, sizeof b) == 0);
	char st[256];
	snprintf(path, sizeof path, "%s/stats", v.mnt);
	ck_assert_int_gt(slurp(path, st, sizeof st), 0);
	munmap(m, MiB);
	close(fd);
	ck_assert_int_eq(stop_l1fs(v.mnt, v.pid), 0);
	v.pid = 0;
	own_unmount(&v);
}
END_TEST

START_TEST(daemon_mode_and_bad_pool)
{
	char pool[512], mnt[256], cmd[1400];
	make_pool(pool, sizeof pool, "fuse-daemon", 16 * MiB);
	snprintf(mnt, sizeof mnt, "/tmp/l1fs-life-%d.XXXXXX", (int)runner);
	ck_assert(mkdtemp(mnt) != NULL);
	/* without -f the command returns once the mount is live */
	snprintf(cmd, sizeof cmd, "%s %s --arena %s", l1fs_bin(), mnt, pool);
	ck_assert_int_eq(system(cmd), 0);
	int mounted = is_mounted(mnt);
	snprintf(cmd, sizeof cmd, "fusermount3 -u %s", mnt);
	if (mounted)
		ck_assert_int_eq(system(cmd), 0);
	ck_assert(mounted);
	/* a pool that is not there: an error, and no mount */
	snprintf(cmd, sizeof cmd, "%s %s --arena %s.missing 2>/dev/null", l1fs_bin(), mnt, pool);
	int rc = system(cmd);
	ck_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
	ck_assert(!is_mounted(mnt));
	snprintf(cmd, sizeof cmd, "%s 2>/dev/null", l1fs_bin());
	rc = system(cmd);
	ck_assert(WIFEXITED(rc) && WEXITSTATUS(rc) != 0);
	rmdir(mnt);
	l1_arena_destroy(pool, 1);
}
END_TEST

/* ---- helper mode for tests/sh/test_fuse.sh ----------------------------- */

static int helper(int argc, char **argv)
{
	struct l1_arena *a = NULL;
	uint64_t v;
	int r;
	if (argc < 3)
		return 2;
	const char *cmd = argv[1], *pool = argv[2];
	if (!strcmp(cmd, "create") && argc == 4) {      /* create POOL MiB */
		struct l1_config c;
		l1_config_init(&c);
		c.path = pool;
		c.size_bytes = strtoull(argv[3], NULL, 10) * MiB;
		c.pin = L1_PIN_OFF;
		c.allow_shm = !l1t_on_hugetlbfs();
		c.force = 1;
		c.mode = 0644;
		if (c.size_bytes < 64 * MiB)
			c.grow_step_bytes = c.size_bytes;
		r = l1_arena_create(&c, &a);
		if (r) {
			fprintf(stderr, "create %s: %s\n", pool, l1_last_error());
			return 1;
		}
		l1_arena_close(a);
		return 0;
	}
	if (!strcmp(cmd, "destroy"))
		return l1_arena_destroy(pool, 1) ? 1 : 0;
	if ((r = l1_arena_open(pool, NULL, &a))) {
		fprintf(stderr, "open %s: %s\n", pool, l1_last_error());
		return 1;
	}
	r = 2;
	if (!strcmp(cmd, "put") && argc == 7) {         /* put POOL KEY|- BYTES SEED MODE */
		struct l1_obj o;
		if (l1_alloc_bytes(a, strtoull(argv[4], NULL, 10), 1, &o) == 0) {
			uint32_t mode = (uint32_t)strtoul(argv[6], NULL, 8);
			l1t_fill(o.ptr, o.size, strtoull(argv[5], NULL, 10));
			if (mode)
				l1_obj_chmod(a, o.id, getuid(), getgid(), mode);
			r = l1_publish(a, o.id, strcmp(argv[3], "-") ? argv[3] : NULL) ? 1 : 0;
			printf("%" PRIu64 "\n", o.id);
		} else {
			r = 1;
		}
	} else if (!strcmp(cmd, "dump") && argc == 4) { /* dump POOL ID: bytes to stdout */
		struct l1_obj o;
		v = strtoull(argv[3], NULL, 10);
		r = 1;
		if (l1_hold(a, v, &o) == 0) {
			r = fwrite(o.ptr, 1, o.data_size, stdout) == o.data_size ? 0 : 1;
			l1_release(a, v);
		}
	} else if (!strcmp(cmd, "state") && argc == 4) {
		struct l1_obj_info oi;
		v = strtoull(argv[3], NULL, 10);
		printf("%s\n", l1_obj_info(a, v, &oi) ? "gone" : l1_state_name(oi.state));
		r = 0;
	} else if (!strcmp(cmd, "free") && argc == 4) {
		v = strtoull(argv[3], NULL, 10);
		r = l1_free_ids(a, &v, 1) ? 1 : 0;
	} else if (!strcmp(cmd, "memcheck")) {
		char rep[4096];
		r = l1_arena_memcheck(a, 0, rep, sizeof rep) ? 1 : 0;
		if (r)
			fprintf(stderr, "%s\n", rep);
	}
	l1_arena_close(a);
	return r;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--helper"))
		return helper(argc - 1, argv + 1);
	runner = getpid();
	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("check_fuse: SKIPPED: /dev/fuse is not usable here (%s)\n", strerror(errno));
		return 0;
	}
	if (access(l1fs_bin(), X_OK) != 0) {
		printf("check_fuse: %s is not built (make bins)\n", l1fs_bin());
		return 1;
	}
	Suite *s = suite_create("fuse");
	TCase *t = tcase_create("view");
	tcase_add_unchecked_fixture(t, mount_setup, mount_teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, listing_and_attributes);
	tcase_add_test(t, odd_keys);
	tcase_add_test(t, read_and_mmap_by_path);
	tcase_add_test(t, appears_and_vanishes);
	tcase_add_test(t, writes_only_before_publish);
	tcase_add_test(t, writing_another_owners_object);
	tcase_add_test(t, rm_frees);
	tcase_add_test(t, open_file_holds_its_object);
	tcase_add_test(t, namespaced_writer_survives_view_gc);
	tcase_add_test(t, nobody_is_refused);
	tcase_add_test(t, open_path_zero_copy);
	tcase_add_test(t, read_only_holds_through_view);
	tcase_add_test(t, stats_fresh_each_read);
	tcase_add_test(t, metrics_format);
	tcase_add_test(t, shell_errnos);
	suite_add_tcase(s, t);

	t = tcase_create("abuse");
	tcase_add_unchecked_fixture(t, mount_setup, mount_teardown);
	tcase_set_timeout(t, 180);
	tcase_add_test(t, flood_of_opens);
	tcase_add_test(t, readers_killed_mid_read);
	suite_add_tcase(s, t);

	t = tcase_create("life");
	tcase_add_unchecked_fixture(t, life_setup, life_sweep);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, clean_shutdown);
	tcase_add_test(t, unmount_while_busy);
	tcase_add_test(t, crashed_daemon_leaves_pool_intact);
	tcase_add_test(t, pool_destroyed_under_reader);
	tcase_add_test(t, daemon_mode_and_bad_pool);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
