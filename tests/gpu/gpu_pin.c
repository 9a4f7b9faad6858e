/*
 * gpu_pin.c - pinning on a real GPU: pools created and attached with
 * pin=AUTO must have every object registered with CUDA
 * (cudaPointerGetAttributes says cudaMemoryTypeHost at its first, middle and
 * last byte), and bytes copied host->device->host must come back equal, for
 * an eager pool, a lazy pool that grows while a second process is attached,
 * and two processes attaching (and pinning) one pool at the same time.
 * libcudart is loaded with dlopen (prototypes declared here), so this file
 * compiles without the CUDA toolkit; it exits 77 (skipped) when no library,
 * driver or device is there.  Helper processes are fresh exec's of this
 * program (CUDA does not survive fork).  Usage:
 *   gpu_pin [--dir DIR] [--allow-shm] [--small] [eager|lazy|twoproc|all]
 * --small divides every size by 16 (objects of 1 MiB, pools of 64-128 MiB)
 * for dry runs against tests/gpu/mock_cudart.c.
 * Exit: 0 all passed, 1 a check failed, 77 no usable GPU.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "l1arena.h"

extern char **environ;

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SKIP 77

/* ---- the CUDA runtime, by hand ------------------------------------------ */

enum { H2D = 1, D2H = 2 };
enum { MEM_UNREGISTERED = 0, MEM_HOST = 1 };

struct cuda_ptr_attr {                  /* struct cudaPointerAttributes (11+) */
	int type;
	int device;
	void *device_pointer;
	void *host_pointer;
	long reserved[8];
};

static struct {
	void *dl;
	int (*get_device_count)(int *);
	const char *(*err)(int);
	int (*set_device)(int);
	int (*malloc)(void **, size_t);
	int (*free)(void *);
	int (*memcpy)(void *, const void *, size_t, int);
	int (*memset)(void *, int, size_t);
	int (*ptr_attr)(struct cuda_ptr_attr *, const void *);
	int (*host_get_device_pointer)(void **, void *, unsigned);
	int (*device_sync)(void);
} rt;

static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL [%d]: ", (int)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failures++;
}

#define CHECK(cond, ...) do { if (!(cond)) { fail(__VA_ARGS__); goto out; } } while (0)
#define CU(call) do { int e_ = (call); \
	CHECK(e_ == 0, "%s: %s (%d)", #call, rt.err(e_), e_); } while (0)
#define L1(call) do { int r_ = (call); \
	CHECK(r_ >= 0, "%s: %s: %s", #call, l1_strerror(r_), l1_last_error()); } while (0)

/* Loads libcudart (as arena/pin.c does) and finds a device; 0, or SKIP
 * with the reason printed. */
static int cuda_load(void)
{
	static const char *const names[] = {
		"libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11",
		"/usr/local/cuda/lib64/libcudart.so", "/usr/local/cuda/lib64/libcudart.so.13",
		"/usr/local/cuda/lib64/libcudart.so.12", "/usr/local/cuda/lib64/libcudart.so.11",
	};
	const char *env = getenv("L1ARENA_CUDART");
	int n = 0, e;

	if (env && *env)
		rt.dl = dlopen(env, RTLD_NOW | RTLD_LOCAL);
	for (size_t i = 0; !rt.dl && i < sizeof names / sizeof *names; i++)
		rt.dl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!rt.dl) {
		printf("SKIP: no libcudart could be loaded\n");
		return SKIP;
	}
#define SYM(f, name) do { *(void **)&rt.f = dlsym(rt.dl, name); \
	if (!rt.f) { printf("SKIP: libcudart lacks %s\n", name); return SKIP; } } while (0)
	SYM(get_device_count, "cudaGetDeviceCount");
	SYM(err, "cudaGetErrorString");
	SYM(set_device, "cudaSetDevice");
	SYM(malloc, "cudaMalloc");
	SYM(free, "cudaFree");
	SYM(memcpy, "cudaMemcpy");
	SYM(memset, "cudaMemset");
	SYM(ptr_attr, "cudaPointerGetAttributes");
	SYM(host_get_device_pointer, "cudaHostGetDevicePointer");
	SYM(device_sync, "cudaDeviceSynchronize");
#undef SYM
	e = rt.get_device_count(&n);
	if (e || n < 1) {
		printf("SKIP: no usable GPU: %s\n", e ? rt.err(e) : "0 devices");
		return SKIP;
	}
	e = rt.set_device(0);
	if (e) {
		printf("SKIP: cudaSetDevice(0): %s\n", rt.err(e));
		return SKIP;
	}
	return 0;
}

/* ---- patterns and checks ------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static void fill(void *p, uint64_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = mix(seed * 0x9e3779b97f4a7c15ull + i);
}

/* Index of the first wrong word, or -1. */
static int64_t verify(const void *p, uint64_t len, uint64_t seed)
{
	const uint64_t *w = p;
	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i] != mix(seed * 0x9e3779b97f4a7c15ull + i))
			return (int64_t)i;
	return -1;
}

/* Is [p, p+len) registered with CUDA (first, middle and last byte)? */
static int registered(const void *p, uint64_t len, char *why, size_t wlen)
{
	const char *at[3] = { p, (const char *)p + len / 2, (const char *)p + len - 1 };
	for (int i = 0; i < 3; i++) {
		struct cuda_ptr_attr a;
		memset(&a, 0, sizeof a);
		int e = rt.ptr_attr(&a, at[i]);
		if (e) {
			snprintf(why, wlen, "cudaPointerGetAttributes(%p): %s (%d)", at[i],
				 rt.err(e), e);
			return 0;
		}
		if (a.type != MEM_HOST) {
			snprintf(why, wlen, "byte %td of the range: memory type %d, not "
				 "cudaMemoryTypeHost", at[i] - (const char *)p, a.type);
			return 0;
		}
	}
	return 1;
}

static void *dev_buf;
static uint64_t dev_len;

static int dev_reserve(uint64_t len)
{
	if (dev_len >= len)
		return 0;
	if (dev_buf)
		rt.free(dev_buf);
	dev_buf = NULL;
	dev_len = 0;
	int e = rt.malloc(&dev_buf, len);
	if (e) {
		fail("cudaMalloc(%" PRIu64 "): %s", len, rt.err(e));
		return -1;
	}
	dev_len = len;
	return 0;
}

/* Checks registration and pattern of src, copies it to the device and
 * back into dst (pinned pool memory too), and compares. */
static int roundtrip(const char *what, const struct l1_obj *src, const struct l1_obj *dst,
		     uint64_t seed)
{
	char why[200];
	int64_t bad;
	int ok = 0;

	CHECK(registered(src->ptr, src->size, why, sizeof why), "%s: object %#" PRIx64
	      " (%" PRIu64 " bytes at offset %" PRIu64 ") not registered: %s", what,
	      src->id, src->size, src->offset, why);
	CHECK(registered(dst->ptr, dst->size, why, sizeof why), "%s: scratch object not "
	      "registered: %s", what, why);
	CHECK(dst->size >= src->size, "%s: scratch too small", what);
	CHECK(dev_reserve(src->size) == 0, "%s: no device buffer", what);
	CU(rt.memset(dev_buf, 0xa5, src->size));
	CU(rt.memcpy(dev_buf, src->ptr, src->size, H2D));
	memset(dst->ptr, 0, src->size);
	CU(rt.memcpy(dst->ptr, dev_buf, src->size, D2H));
	CU(rt.device_sync());
	bad = verify(dst->ptr, src->size, seed);
	CHECK(bad < 0, "%s: object %#" PRIx64 " came back from the GPU different at "
	      "byte %" PRId64, what, src->id, bad * 8);
	ok = 1;
out:
	return ok ? 0 : -1;
}

/* ---- pools -------------------------------------------------------------- */

static const char *dir = "/dev/hugepages";
static int allow_shm;
static uint64_t U = 16 * MiB;           /* the object unit; 1 MiB with --small */

static void pool_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/gpupin-%s-%d", dir, name, (int)getpid());
}

static int create_pool(const char *path, uint64_t size, uint64_t step, int lazy,
		       uint64_t init, int pin, struct l1_arena **a)
{
	struct l1_config c;
	l1_config_init(&c);
	c.path = path;
	c.size_bytes = size;
	c.grow_step_bytes = step;
	c.lazy = lazy;
	c.init_size_bytes = init;
	c.pin = pin;
	c.allow_shm = allow_shm;
	c.force = 1;
	int r = l1_arena_create(&c, a);
	if (r < 0)
		fail("create %s (%" PRIu64 " MiB, %s): %s: %s", path, size >> 20,
		     lazy ? "lazy" : "eager", l1_strerror(r), l1_last_error());
	return r;
}

/* This process's client entry must say PINNED; prints its reason. */
static int expect_pinned(struct l1_arena *a, const char *what)
{
	struct l1_client_info ci[64];
	int n = l1_arena_clients(a, ci, 64), found = 0;

	for (int i = 0; i < n; i++) {
		if (ci[i].pid != getpid())
			continue;
		found = 1;
		printf("  %s: pid %d pin_status %u, %" PRIu64 " MiB pinned: %s\n", what,
		       ci[i].pid, ci[i].pin_status, ci[i].pinned_bytes >> 20,
		       ci[i].pin_reason);
		if (ci[i].pin_status != L1_PIN_PINNED) {
			fail("%s: pin_status %u, not PINNED: %s", what, ci[i].pin_status,
			     ci[i].pin_reason);
			return -1;
		}
	}
	if (!found) {
		fail("%s: no client entry for pid %d (l1_arena_clients = %d)", what,
		     (int)getpid(), n);
		return -1;
	}
	return 0;
}

/* The registered ranges must cover the committed data region, each no more
 * than 64 GiB and each registered as CUDA sees it. */
static int expect_ranges(struct l1_arena *a, const char *what)
{
	struct l1_vm_space vm;
	struct l1_range rg[512];
	char why[200];
	int n, ok = 0;

	L1(l1_get_vm_space(a, &vm));
	n = l1_arena_pinned_ranges(a, rg, 512);
	CHECK(n >= 1, "%s: no pinned ranges (%d)", what, n);
	CHECK((uint32_t)n == vm.pinned, "%s: %d ranges but vm_space says %u", what, n,
	      vm.pinned);
	if (n > 512)
		n = 512;
	uint64_t covered = 0;
	for (int i = 0; i < n; i++) {
		CHECK(rg[i].len <= 64 * GiB, "%s: range %d is %" PRIu64 " MiB", what, i,
		      rg[i].len >> 20);
		CHECK(rg[i].offset + rg[i].len <= vm.size, "%s: range %d beyond mapping",
		      what, i);
		CHECK(registered((char *)vm.base + rg[i].offset, rg[i].len, why, sizeof why),
		      "%s: range %d (%" PRIu64 "+%" PRIu64 "): %s", what, i, rg[i].offset,
		      rg[i].len, why);
		uint64_t lo = rg[i].offset, hi = rg[i].offset + rg[i].len;
		uint64_t dlo = vm.data_offset, dhi = vm.data_offset + vm.committed;
		if (hi > dlo && lo < dhi)
			covered += (hi < dhi ? hi : dhi) - (lo > dlo ? lo : dlo);
	}
	CHECK(covered >= vm.committed, "%s: ranges cover %" PRIu64 " MiB of the %" PRIu64
	      " MiB committed", what, covered >> 20, vm.committed >> 20);
	printf("  %s: %d ranges cover the %" PRIu64 " MiB committed\n", what, n,
	       vm.committed >> 20);
	ok = 1;
out:
	return ok ? 0 : -1;
}

/* ---- eager --------------------------------------------------------------- */

static int test_eager(void)
{
	char path[512];
	struct l1_arena *a = NULL;
	static struct l1_obj big[40], small[64], scratch;
	int ok = 0;

	printf("eager: %" PRIu64 " MiB pool, %" PRIu64 " MiB pin chunks\n", (64 * U) >> 20,
	       (16 * U) >> 20);
	pool_path(path, sizeof path, "eager");
	if (create_pool(path, 64 * U, 16 * U, 0, 0, L1_PIN_AUTO, &a) < 0)
		return -1;
	CHECK(expect_pinned(a, "eager creator") == 0, "eager: not pinned");
	CHECK(expect_ranges(a, "eager creator") == 0, "eager: ranges");
	L1(l1_alloc_bytes(a, U, 1, &scratch));
	L1(l1_alloc_bytes(a, U, 40, big));
	L1(l1_alloc_bytes(a, 100 * 1024 + 8, 64, small));
	for (int i = 0; i < 40; i++)
		fill(big[i].ptr, big[i].size, 1000 + i);
	for (int i = 0; i < 64; i++)
		fill(small[i].ptr, small[i].size, 2000 + i);
	for (int i = 0; i < 40; i++)
		CHECK(roundtrip("eager big", &big[i], &scratch, 1000 + i) == 0, "eager");
	for (int i = 0; i < 64; i++)
		CHECK(roundtrip("eager small", &small[i], &scratch, 2000 + i) == 0, "eager");
	L1(l1_free(a, big, 40));
	L1(l1_free(a, small, 64));
	L1(l1_free(a, &scratch, 1));
	ok = 1;
out:
	if (a) {
		l1_arena_close(a);
		l1_arena_destroy(path, 1);
	}
	printf("eager: %s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : -1;
}

/* ---- helpers in other processes ---------------------------------------- */

static const char *self_exe;

static pid_t spawn_peer(char *const argv[])
{
	pid_t pid;
	int r = posix_spawn(&pid, self_exe, NULL, NULL, argv, environ);
	if (r) {
		fail("posix_spawn %s: %s", self_exe, strerror(r));
		return -1;
	}
	return pid;
}

static int wait_peer(pid_t pid, const char *what)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	fail("%s (pid %d) %s %d", what, (int)pid, WIFEXITED(st) ? "exited" : "died of signal",
	     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return -1;
}

/* peer PATH NKEYS PREFIX MAPPED RFD WFD: attaches with pin=AUTO, checks and
 * round-trips objects PREFIX0..PREFIX(NKEYS-1) (seed 3000+i); with RFD >= 0,
 * says "1" on WFD, waits for a count M on RFD, then does the same for keys
 * NKEYS..M-1 (which appeared after the pool grew). */
static int peer_main(int argc, char **argv)
{
	struct l1_open_opts o;
	struct l1_arena *a = NULL;
	struct l1_obj obj, scratch;
	char key[64], what[96];
	int have_scratch = 0, ok = 0;

	if (argc < 8)
		return 2;
	const char *path = argv[2];
	int nkeys = atoi(argv[3]);
	const char *prefix = argv[4];
	int mapped = atoi(argv[5]);
	int rfd = atoi(argv[6]), wfd = atoi(argv[7]);

	if (cuda_load() != 0)
		return 1;
	l1_open_opts_init(&o);
	o.pin = L1_PIN_AUTO;
	o.pin_mapped = mapped;
	snprintf(what, sizeof what, "peer %d%s", (int)getpid(), mapped ? " (mapped)" : "");
	L1(l1_arena_open(path, &o, &a));
	CHECK(expect_pinned(a, what) == 0, "peer not pinned");
	CHECK(expect_ranges(a, what) == 0, "peer ranges");
	L1(l1_alloc_bytes(a, U, 1, &scratch));
	have_scratch = 1;
	for (int pass = 0, from = 0; pass < 2; pass++) {
		for (int i = from; i < nkeys; i++) {
			snprintf(key, sizeof key, "%s%d", prefix, i);
			/* Readers hold what they copy; holding also notices growth. */
			L1(l1_hold_key(a, key, &obj));
			int rr = roundtrip(what, &obj, &scratch, 3000 + i);
			void *d = NULL;
			int e = mapped ? rt.host_get_device_pointer(&d, obj.ptr, 0) : 0;
			L1(l1_release(a, obj.id));
			CHECK(rr == 0, "%s", what);
			CHECK(e == 0 && (!mapped || d), "%s: cudaHostGetDevicePointer: %s",
			      what, rt.err(e));
		}
		if (rfd < 0)
			break;
		char buf[32] = "1";
		CHECK(write(wfd, buf, 1) == 1, "%s: pipe", what);
		ssize_t got = read(rfd, buf, sizeof buf - 1);
		CHECK(got > 0, "%s: pipe closed", what);
		buf[got] = 0;
		from = nkeys;
		nkeys = atoi(buf);
		rfd = -1;
		/* The pool grew meanwhile: the next call (lookup) notices and pins. */
	}
	CHECK(expect_ranges(a, what) == 0, "%s: ranges after growth", what);
	ok = 1;
out:
	if (have_scratch)
		l1_free(a, &scratch, 1);
	l1_arena_close(a);
	return ok && !failures ? 0 : 1;
}

static int publish_objs(struct l1_arena *a, const char *prefix, int from, int to,
			uint64_t size, int pinned)
{
	struct l1_obj o;
	char key[64];
	int ok = 0;

	for (int i = from; i < to; i++) {
		char why[200];
		L1(l1_alloc_bytes(a, size, 1, &o));
		/* Registered when handed out, also when this alloc grew the pool. */
		CHECK(!pinned || registered(o.ptr, o.size, why, sizeof why), "object %d (offset %"
		      PRIu64 ") not registered when l1_alloc returned it: %s", i, o.offset, why);
		fill(o.ptr, o.size, 3000 + i);
		snprintf(key, sizeof key, "%s%d", prefix, i);
		L1(l1_publish(a, o.id, key));
	}
	ok = 1;
out:
	return ok ? 0 : -1;
}

/* ---- lazy, growing while a peer is attached ------------------------------ */

static int test_lazy(void)
{
	char path[512], nbuf[16], rfd_s[16], wfd_s[16];
	struct l1_arena *a = NULL;
	struct l1_usage u0, u1;
	int to_peer[2] = { -1, -1 }, from_peer[2] = { -1, -1 };
	pid_t pid = -1;
	int ok = 0;

	printf("lazy: %" PRIu64 " MiB pool, %" PRIu64 " MiB committed at first and per "
	       "step\n", (128 * U) >> 20, (16 * U) >> 20);
	pool_path(path, sizeof path, "lazy");
	if (create_pool(path, 128 * U, 16 * U, 1, 16 * U, L1_PIN_AUTO, &a) < 0)
		return -1;
	CHECK(expect_pinned(a, "lazy creator") == 0, "lazy: not pinned");
	L1(l1_arena_usage(a, &u0));
	CHECK(publish_objs(a, "lz", 0, 8, U, 1) == 0, "lazy: publish");
	CHECK(expect_ranges(a, "lazy creator") == 0, "lazy: ranges");

	CHECK(pipe(to_peer) == 0 && pipe(from_peer) == 0, "pipe: %s", strerror(errno));
	/* The peer inherits only its own ends. */
	fcntl(to_peer[1], F_SETFD, FD_CLOEXEC);
	fcntl(from_peer[0], F_SETFD, FD_CLOEXEC);
	snprintf(rfd_s, sizeof rfd_s, "%d", to_peer[0]);
	snprintf(wfd_s, sizeof wfd_s, "%d", from_peer[1]);
	char *argv[] = { (char *)self_exe, "--peer", path, "8", "lz", "0", rfd_s, wfd_s, NULL };
	pid = spawn_peer(argv);
	CHECK(pid > 0, "lazy: spawn");
	close(to_peer[0]);
	close(from_peer[1]);
	to_peer[0] = from_peer[1] = -1;
	char c;
	CHECK(read(from_peer[0], &c, 1) == 1, "lazy: peer gave up before growth");

	/* Grow to over 72 units while the peer is attached. */
	CHECK(publish_objs(a, "lz", 8, 72, U, 1) == 0, "lazy: publish after growth");
	L1(l1_arena_usage(a, &u1));
	printf("  committed %" PRIu64 " -> %" PRIu64 " MiB\n", u0.committed_bytes >> 20,
	       u1.committed_bytes >> 20);
	CHECK(u1.committed_bytes > u0.committed_bytes, "lazy: the pool did not grow");
	CHECK(expect_ranges(a, "lazy creator after growth") == 0, "lazy: ranges");
	snprintf(nbuf, sizeof nbuf, "%d", 72);
	CHECK(write(to_peer[1], nbuf, strlen(nbuf)) > 0, "lazy: pipe");
	CHECK(wait_peer(pid, "lazy peer") == 0, "lazy: peer failed");
	pid = -1;
	ok = 1;
out:
	if (to_peer[1] >= 0)
		close(to_peer[1]);
	if (from_peer[0] >= 0)
		close(from_peer[0]);
	if (to_peer[0] >= 0)
		close(to_peer[0]);
	if (from_peer[1] >= 0)
		close(from_peer[1]);
	if (pid > 0)
		wait_peer(pid, "lazy peer");
	if (a) {
		l1_arena_close(a);
		l1_arena_destroy(path, 1);
	}
	printf("lazy: %s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : -1;
}

/* ---- two processes pinning one pool at once ------------------------------ */

static int test_twoproc(void)
{
	char path[512];
	struct l1_arena *a = NULL;
	pid_t pid[2] = { -1, -1 };
	int ok = 0;

	printf("twoproc: %" PRIu64 " MiB eager pool, creator unpinned, two peers pin at "
	       "once\n", (64 * U) >> 20);
	pool_path(path, sizeof path, "two");
	if (create_pool(path, 64 * U, 16 * U, 0, 0, L1_PIN_OFF, &a) < 0)
		return -1;
	CHECK(publish_objs(a, "tp", 0, 24, U, 0) == 0, "twoproc: publish");
	for (int i = 0; i < 2; i++) {
		char *argv[] = { (char *)self_exe, "--peer", path, "24", "tp",
				 i ? "1" : "0", "-1", "-1", NULL };
		pid[i] = spawn_peer(argv);
		CHECK(pid[i] > 0, "twoproc: spawn");
	}
	for (int i = 0; i < 2; i++) {
		int r = wait_peer(pid[i], "twoproc peer");
		pid[i] = -1;
		CHECK(r == 0, "twoproc: peer %d failed", i);
	}
	ok = 1;
out:
	for (int i = 0; i < 2; i++)
		if (pid[i] > 0)
			wait_peer(pid[i], "twoproc peer");
	if (a) {
		l1_arena_close(a);
		l1_arena_destroy(path, 1);
	}
	printf("twoproc: %s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *which = "all";
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	self_exe = "/proc/self/exe";
	static char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		self_exe = exe;
	}
	if (argc > 1 && !strcmp(argv[1], "--peer"))
		return peer_main(argc, argv);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--allow-shm"))
			allow_shm = 1;
		else if (!strcmp(argv[i], "--small"))
			U = MiB;
		else if (argv[i][0] != '-')
			which = argv[i];
		else {
			fprintf(stderr, "usage: %s [--dir DIR] [--allow-shm] "
				"[--small] [eager|lazy|twoproc|all]\n", argv[0]);
			return 2;
		}
	}
	r = cuda_load();
	if (r)
		return r;
	unsetenv("L1ARENA_PIN");
	printf("gpu_pin: pools in %s%s\n", dir, allow_shm ? " (shm fallback allowed)" : "");
	if (!strcmp(which, "all") || !strcmp(which, "eager"))
		test_eager();
	if (!strcmp(which, "all") || !strcmp(which, "lazy"))
		test_lazy();
	if (!strcmp(which, "all") || !strcmp(which, "twoproc"))
		test_twoproc();
	if (dev_buf)
		rt.free(dev_buf);
	printf("gpu_pin: %s (%d failure%s)\n", failures ? "FAILED" : "passed", failures,
	       failures == 1 ? "" : "s");
	return failures ? 1 : 0;
}
