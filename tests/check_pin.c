/*
 * check_pin.c - the pin module (arena/pin.c) on a machine that may have no
 * GPU.  What the real libcudart on this machine says decides what the
 * no-driver case expects (no library, no driver, no device, or a usable GPU),
 * so that case passes anywhere while always checking the reason.  The active
 * path is tested against a mock libcudart, compiled at run time from the
 * source below with $CC (or cc) and loaded through L1ARENA_CUDART: it counts
 * registrations, refuses overlaps as CUDA does, and fails on request.  Pool
 * cases check that pin=AUTO reaches the client table with its reason.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "l1arena.h"
#include "pin.h"
#include "common/testutil.h"

/* ---- what the real CUDA runtime on this machine says -------------------- */

static const char *const real_libs[] = {
	"libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11",
	"/usr/local/cuda/lib64/libcudart.so", "/usr/local/cuda/lib64/libcudart.so.13",
	"/usr/local/cuda/lib64/libcudart.so.12", "/usr/local/cuda/lib64/libcudart.so.11",
};

enum real_cuda { REAL_NOLIB, REAL_NODRIVER, REAL_NODEVICE, REAL_OTHER_ERR, REAL_GPU };

/* Probes as pin.c does; fills the error text the module should quote. */
static enum real_cuda probe_real(const char *lib, char *text, size_t len)
{
	void *dl = NULL;
	enum real_cuda r;
	int n = 0, e;

	if (lib)
		dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	for (size_t i = 0; !lib && !dl && i < sizeof real_libs / sizeof *real_libs; i++)
		dl = dlopen(real_libs[i], RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		return REAL_NOLIB;
	int (*count)(int *) = (int (*)(int *))dlsym(dl, "cudaGetDeviceCount");
	const char *(*str)(int) = (const char *(*)(int))dlsym(dl, "cudaGetErrorString");
	ck_assert_ptr_nonnull(count);
	ck_assert_ptr_nonnull(str);
	e = count(&n);
	snprintf(text, len, "%s", str(e));
	if (e == 35)
		r = REAL_NODRIVER;
	else if (e == 100 || (e == 0 && n == 0))
		r = REAL_NODEVICE;
	else if (e)
		r = REAL_OTHER_ERR;
	else
		r = REAL_GPU;
	dlclose(dl);
	return r;
}

static void expect_real(const char *lib)
{
	struct l1_pin *pn = NULL;
	char text[256], want[400];
	enum real_cuda rc = probe_real(lib, text, sizeof text);
	char *buf = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	ck_assert_ptr_ne(buf, MAP_FAILED);

	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, &pn), 0);
	ck_assert_ptr_nonnull(pn);
	const char *why = l1_pin_reason(pn);
	switch (rc) {
	case REAL_NOLIB:
		if (lib)
			ck_assert_msg(strstr(why, lib) && !strncmp(why, "no libcudart", 12),
				      "reason: %s", why);
		else
			ck_assert_msg(!strncmp(why, "no libcudart: tried libcudart.so", 32),
				      "reason: %s", why);
		break;
	case REAL_NODRIVER:
		snprintf(want, sizeof want, "no CUDA driver: %s", text);
		ck_assert_str_eq(why, want);
		break;
	case REAL_NODEVICE:
		ck_assert_msg(!strncmp(why, "no CUDA device", 14), "reason: %s", why);
		break;
	case REAL_OTHER_ERR:
		ck_assert_msg(!strncmp(why, "CUDA unusable: ", 15) && strstr(why, text),
			      "reason: %s", why);
		break;
	case REAL_GPU:
		/* A usable GPU: active, nothing registered yet, then pins. */
		ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
		ck_assert_str_eq(why, "nothing registered yet");
		ck_assert_int_eq(l1_pin_chunk(pn, buf, 1 << 16), 0);
		ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_PINNED);
		ck_assert_uint_eq(l1_pin_bytes(pn), 1 << 16);
		l1_pin_close(pn);
		munmap(buf, 1 << 16);
		return;
	}
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	ck_assert_int_eq(l1_pin_chunk(pn, buf, 1 << 16), -ENODEV);
	ck_assert_uint_eq(l1_pin_bytes(pn), 0);
	ck_assert_int_eq(l1_pin_ranges(pn, buf, NULL, 0), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	l1_pin_close(pn);
	munmap(buf, 1 << 16);
}

START_TEST(test_no_driver)
{
	unsetenv("L1ARENA_CUDART");
	unsetenv("L1ARENA_PIN");
	expect_real(NULL);
	/* The toolkit's own copy, named explicitly, says the same. */
	if (access("/usr/local/cuda/lib64/libcudart.so", F_OK) == 0) {
		setenv("L1ARENA_CUDART", "/usr/local/cuda/lib64/libcudart.so", 1);
		expect_real("/usr/local/cuda/lib64/libcudart.so");
	}
}
END_TEST

START_TEST(test_missing_library)
{
	struct l1_pin *pn = NULL;
	char buf[4096];
	struct l1_range rg[4];

	unsetenv("L1ARENA_PIN");
	setenv("L1ARENA_CUDART", "/nonexistent/libcudart.so", 1);
	for (int mode = L1_PIN_AUTO; mode <= L1_PIN_DEFER; mode++) {
		ck_assert_int_eq(l1_pin_open(mode, 1, &pn), 0);
		ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
		const char *why = l1_pin_reason(pn);
		ck_assert_msg(!strncmp(why, "no libcudart: cannot load "
				       "L1ARENA_CUDART=/nonexistent/libcudart.so", 65),
			      "reason: %s", why);
		ck_assert_msg(strstr(why, ": cannot open shared object file"), "reason: %s", why);
		ck_assert_int_lt(strlen(why), L1_REASON_MAX);   /* fits the client table */
		ck_assert_int_eq(l1_pin_chunk(pn, buf, sizeof buf), -ENODEV);
		ck_assert_int_eq(l1_pin_ranges(pn, buf, rg, 4), 0);
		ck_assert_uint_eq(l1_pin_bytes(pn), 0);
		l1_pin_close(pn);
	}
	/* A library that loads but is no CUDA runtime. */
	setenv("L1ARENA_CUDART", "libc.so.6", 1);
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, &pn), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	ck_assert_msg(strstr(l1_pin_reason(pn), "not a CUDA runtime"), "reason: %s",
		      l1_pin_reason(pn));
	ck_assert_int_eq(l1_pin_chunk(pn, buf, sizeof buf), -ENODEV);
	l1_pin_close(pn);
}
END_TEST

START_TEST(test_disabled)
{
	struct l1_pin *pn = NULL;
	char buf[4096];

	unsetenv("L1ARENA_PIN");
	ck_assert_int_eq(l1_pin_open(L1_PIN_OFF, 1, &pn), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_NONE);
	ck_assert_str_eq(l1_pin_reason(pn), "not asked: pin = L1_PIN_OFF in the open options");
	ck_assert_int_eq(l1_pin_chunk(pn, buf, sizeof buf), -ENODEV);
	ck_assert_uint_eq(l1_pin_bytes(pn), 0);
	l1_pin_close(pn);

	const char *offs[] = { "off", "OFF", "0", "no" };
	for (unsigned i = 0; i < 4; i++) {
		setenv("L1ARENA_PIN", offs[i], 1);
		for (int mode = L1_PIN_AUTO; mode <= L1_PIN_DEFER; mode++) {
			ck_assert_int_eq(l1_pin_open(mode, 0, &pn), 0);
			ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_NONE);
			ck_assert_str_eq(l1_pin_reason(pn), "turned off by the environment: L1ARENA_PIN=off");
			ck_assert_int_eq(l1_pin_chunk(pn, buf, sizeof buf), -ENODEV);
			ck_assert_int_eq(l1_pin_ranges(pn, buf, NULL, 0), 0);
			l1_pin_close(pn);
		}
	}
	unsetenv("L1ARENA_PIN");
}
END_TEST

START_TEST(test_inactive_chunk)
{
	struct l1_pin *pn = NULL;
	struct l1_range rg[2];
	char *buf = malloc(1 << 20);

	ck_assert_ptr_nonnull(buf);
	setenv("L1ARENA_CUDART", "/nonexistent/libcudart.so", 1);
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, &pn), 0);
	char before[L1_REASON_MAX * 2];
	snprintf(before, sizeof before, "%s", l1_pin_reason(pn));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(l1_pin_chunk(pn, buf + i * 4096, 4096), -ENODEV);
	ck_assert_int_eq(l1_pin_chunk(pn, NULL, 4096), -EINVAL);
	ck_assert_int_eq(l1_pin_chunk(pn, buf, 0), -EINVAL);
	ck_assert_uint_eq(l1_pin_bytes(pn), 0);
	ck_assert_int_eq(l1_pin_ranges(pn, buf, rg, 2), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	/* The reason still says why the module is inactive. */
	ck_assert_str_eq(l1_pin_reason(pn), before);
	l1_pin_close(pn);
	free(buf);
}
END_TEST

START_TEST(test_ranges_empty_close_null)
{
	struct l1_pin *pn = NULL;
	struct l1_range rg[2] = { { 7, 7 }, { 7, 7 } };

	l1_pin_close(NULL);
	ck_assert_uint_eq(l1_pin_status(NULL), L1_PIN_NONE);
	ck_assert_uint_eq(l1_pin_bytes(NULL), 0);
	ck_assert_ptr_nonnull(l1_pin_reason(NULL));
	ck_assert_int_eq(l1_pin_ranges(NULL, NULL, rg, 2), 0);
	ck_assert_int_eq(l1_pin_chunk(NULL, rg, 16), -EINVAL);
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, NULL), -EINVAL);
	ck_assert_int_eq(l1_pin_open(7, 0, &pn), -EINVAL);
	ck_assert_ptr_null(pn);

	ck_assert_int_eq(l1_pin_open(L1_PIN_OFF, 0, &pn), 0);
	ck_assert_int_eq(l1_pin_ranges(pn, rg, rg, 2), 0);
	ck_assert_int_eq(l1_pin_ranges(pn, rg, NULL, 0), 0);
	ck_assert_uint_eq(rg[0].offset, 7);         /* nothing written */
	l1_pin_close(pn);
}
END_TEST

/* ---- the active path, against a mock libcudart ------------------------- */

static const char mock_src[] =
	"#include <stddef.h>\n"
	"#include <string.h>\n"
	"int mock_devices = 1, mock_count_err, mock_fail_next, mock_registered,\n"
	"    mock_unregistered, mock_calls, mock_live;\n"
	"unsigned mock_last_flags;\n"
	"unsigned long long mock_bytes;\n"
	"static struct { char *p; size_t len; } regs[4096];\n"
	"int cudaGetDeviceCount(int *n) {\n"
	"  if (mock_count_err) return mock_count_err;\n"
	"  *n = mock_devices; return 0; }\n"
	"const char *cudaGetErrorString(int e) {\n"
	"  switch (e) { case 0: return \"no error\";\n"
	"  case 2: return \"mock: out of memory\";\n"
	"  case 712: return \"mock: part of the range is already registered\";\n"
	"  default: return \"mock: unknown error\"; } }\n"
	"int cudaHostRegister(void *p, size_t len, unsigned flags) {\n"
	"  char *c = p; mock_calls++; mock_last_flags = flags;\n"
	"  if (mock_fail_next) { int e = mock_fail_next; mock_fail_next = 0; return e; }\n"
	"  for (int i = 0; i < mock_live; i++)\n"
	"    if (c < regs[i].p + regs[i].len && regs[i].p < c + len) return 712;\n"
	"  if (mock_live == 4096) return 2;\n"
	"  regs[mock_live].p = c; regs[mock_live].len = len; mock_live++;\n"
	"  mock_registered++; mock_bytes += len; return 0; }\n"
	"int mock_is_registered(const char *p, size_t len) {\n"
	"  for (int i = 0; i < mock_live; i++)\n"
	"    if (regs[i].p <= p && p + len <= regs[i].p + regs[i].len) return 1;\n"
	"  return 0; }\n"
	"int cudaHostUnregister(void *p) {\n"
	"  for (int i = 0; i < mock_live; i++)\n"
	"    if (regs[i].p == p) { mock_bytes -= regs[i].len;\n"
	"      regs[i] = regs[--mock_live]; mock_unregistered++; return 0; }\n"
	"  return 713; }\n";

static char mock_dir[64];
static char mock_path[128];

static void mock_build(void)
{
	char src[160], cmd[600];
	const char *cc = getenv("CC");
	FILE *f;

	mock_path[0] = 0;
	snprintf(mock_dir, sizeof mock_dir, "/tmp/l1pin-mock.XXXXXX");
	if (!mkdtemp(mock_dir)) {
		mock_dir[0] = 0;
		return;
	}
	snprintf(src, sizeof src, "%s/mock_cudart.c", mock_dir);
	f = fopen(src, "w");
	if (!f)
		return;
	fputs(mock_src, f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "%s -shared -fPIC -O1 -o %s/libcudart_mock.so %s",
		 cc && *cc ? cc : "cc", mock_dir, src);
	if (system(cmd) == 0)
		snprintf(mock_path, sizeof mock_path, "%s/libcudart_mock.so", mock_dir);
}

static void mock_remove(void)
{
	char p[200];
	if (!mock_dir[0])
		return;
	snprintf(p, sizeof p, "%s/mock_cudart.c", mock_dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/libcudart_mock.so", mock_dir);
	unlink(p);
	rmdir(mock_dir);
	mock_dir[0] = 0;
}

struct mock {
	void *dl;
	int *devices, *count_err, *fail_next, *registered, *unregistered, *calls, *live;
	unsigned *last_flags;
	unsigned long long *bytes;
	int (*is_registered)(const void *p, size_t len);
};

static int mock_is_registered(struct mock *m, const void *p, uint64_t len)
{
	return m->is_registered(p, len);
}

/* Loads the mock (pin.c's dlopen of the same path shares it) and points
 * L1ARENA_CUDART at it. */
static void mock_load(struct mock *m)
{
	ck_assert_msg(mock_path[0], "could not compile the mock libcudart with $CC/cc");
	m->dl = dlopen(mock_path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(m->dl, "dlopen mock: %s", dlerror());
#define SYM(f, n) do { m->f = dlsym(m->dl, n); ck_assert_ptr_nonnull(m->f); } while (0)
	SYM(devices, "mock_devices");
	SYM(count_err, "mock_count_err");
	SYM(fail_next, "mock_fail_next");
	SYM(registered, "mock_registered");
	SYM(unregistered, "mock_unregistered");
	SYM(calls, "mock_calls");
	SYM(live, "mock_live");
	SYM(last_flags, "mock_last_flags");
	SYM(bytes, "mock_bytes");
	*(void **)&m->is_registered = dlsym(m->dl, "mock_is_registered");
	ck_assert_ptr_nonnull(m->is_registered);
#undef SYM
	setenv("L1ARENA_CUDART", mock_path, 1);
	unsetenv("L1ARENA_PIN");
}

/* A reserved, writable stretch of address space; pages are never touched. */
static char *reserve(uint64_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

START_TEST(test_mock_pin_and_close)
{
	struct mock m;
	struct l1_pin *pn = NULL;
	struct l1_range rg[8];
	const uint64_t MB = 1 << 20;
	char *base = reserve(64 * MB, PROT_READ | PROT_WRITE);

	mock_load(&m);
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, &pn), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	ck_assert_str_eq(l1_pin_reason(pn), "nothing registered yet");

	ck_assert_int_eq(l1_pin_chunk(pn, base + 16 * MB, 16 * MB), 0);
	ck_assert_uint_eq(*m.last_flags, 1);       /* Portable only */
	ck_assert_int_eq(l1_pin_chunk(pn, base, 16 * MB), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_PINNED);
	ck_assert_msg(strstr(l1_pin_reason(pn), "cudaHostRegister (portable)"),
		      "reason: %s", l1_pin_reason(pn));
	ck_assert_uint_eq(l1_pin_bytes(pn), 32 * MB);
	ck_assert_int_eq(*m.registered, 2);

	/* Again, or a part of a registered chunk: nothing new. */
	ck_assert_int_eq(l1_pin_chunk(pn, base, 16 * MB), 0);
	ck_assert_int_eq(l1_pin_chunk(pn, base + 20 * MB, 4 * MB), 0);
	ck_assert_int_eq(*m.calls, 2);
	/* Straddling two chunks, or a registered one and new space: refused. */
	ck_assert_int_eq(l1_pin_chunk(pn, base + 8 * MB, 16 * MB), -EINVAL);
	ck_assert_int_eq(l1_pin_chunk(pn, base + 24 * MB, 16 * MB), -EINVAL);
	ck_assert_int_eq(*m.calls, 2);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_PINNED);

	/* Ranges come sorted and relative to base. */
	ck_assert_int_eq(l1_pin_ranges(pn, base, rg, 8), 2);
	ck_assert_uint_eq(rg[0].offset, 0);
	ck_assert_uint_eq(rg[0].len, 16 * MB);
	ck_assert_uint_eq(rg[1].offset, 16 * MB);
	ck_assert_uint_eq(rg[1].len, 16 * MB);
	/* Fewer slots than ranges: the count, and only max written. */
	rg[1].offset = 77;
	ck_assert_int_eq(l1_pin_ranges(pn, base, rg, 1), 2);
	ck_assert_uint_eq(rg[1].offset, 77);
	ck_assert_int_eq(l1_pin_ranges(pn, base, NULL, 0), 2);

	l1_pin_close(pn);
	ck_assert_int_eq(*m.unregistered, 2);
	ck_assert_int_eq(*m.live, 0);
	ck_assert_uint_eq(*m.bytes, 0);
	munmap(base, 64 * MB);
}
END_TEST

START_TEST(test_mock_failure_not_counted)
{
	struct mock m;
	struct l1_pin *pn = NULL;
	struct l1_range rg[4];
	const uint64_t MB = 1 << 20;
	char *base = reserve(64 * MB, PROT_READ | PROT_WRITE);

	mock_load(&m);
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 1, &pn), 0);
	ck_assert_int_eq(l1_pin_chunk(pn, base, 16 * MB), 0);
	ck_assert_uint_eq(*m.last_flags, 3);       /* Portable | Mapped */

	*m.fail_next = 2;
	ck_assert_int_eq(l1_pin_chunk(pn, base + 16 * MB, 16 * MB), -ENOMEM);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	ck_assert_uint_eq(l1_pin_bytes(pn), 16 * MB);
	ck_assert_int_eq(l1_pin_ranges(pn, base, rg, 4), 1);
	const char *why = l1_pin_reason(pn);
	ck_assert_msg(strstr(why, "cudaHostRegister refused 16 MiB") &&
		      strstr(why, "mock: out of memory (error 2)"), "reason: %s", why);

	/* Someone else in the process registered it: not ours, not counted. */
	*m.fail_next = 712;
	ck_assert_int_eq(l1_pin_chunk(pn, base + 32 * MB, 16 * MB), -EEXIST);
	ck_assert_uint_eq(l1_pin_bytes(pn), 16 * MB);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);

	/* Retrying the failed chunks works and clears the failure. */
	ck_assert_int_eq(l1_pin_chunk(pn, base + 16 * MB, 16 * MB), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	ck_assert_int_eq(l1_pin_chunk(pn, base + 32 * MB, 16 * MB), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_PINNED);
	ck_assert_uint_eq(l1_pin_bytes(pn), 48 * MB);
	ck_assert_int_eq(l1_pin_ranges(pn, base, rg, 4), 3);

	/* Over 64 GiB is never registered (no memory needed: refused first). */
	char *far = base + (1ull << 40);
	ck_assert_int_eq(l1_pin_chunk(pn, far, (64ull << 30) + 4096), -EINVAL);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	ck_assert_msg(strstr(l1_pin_reason(pn), "64 GiB"), "reason: %s", l1_pin_reason(pn));
	ck_assert_int_eq(*m.calls, 5);
	ck_assert_uint_eq(l1_pin_bytes(pn), 48 * MB);
	ck_assert_int_eq(l1_pin_chunk(pn, far, (64ull << 30) + 4096), -EINVAL);
	ck_assert_int_eq(*m.calls, 5);

	l1_pin_close(pn);
	ck_assert_int_eq(*m.live, 0);
	ck_assert_int_eq(*m.unregistered, 3);      /* only what we registered */
	munmap(base, 64 * MB);
}
END_TEST

START_TEST(test_mock_no_device)
{
	struct mock m;
	struct l1_pin *pn = NULL;
	char buf[4096];

	mock_load(&m);
	*m.devices = 0;
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, &pn), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_UNPINNED);
	ck_assert_msg(!strncmp(l1_pin_reason(pn), "no CUDA device", 14), "reason: %s",
		      l1_pin_reason(pn));
	ck_assert_int_eq(l1_pin_chunk(pn, buf, sizeof buf), -ENODEV);
	l1_pin_close(pn);

	*m.devices = 1;
	*m.count_err = 35;
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, &pn), 0);
	ck_assert_str_eq(l1_pin_reason(pn), "no CUDA driver: mock: unknown error");
	l1_pin_close(pn);

	*m.count_err = 999;
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, &pn), 0);
	ck_assert_str_eq(l1_pin_reason(pn), "CUDA unusable: mock: unknown error "
			 "(error 999 from cudaGetDeviceCount)");
	ck_assert_int_eq(l1_pin_chunk(pn, buf, sizeof buf), -ENODEV);
	ck_assert_int_eq(*m.calls, 0);
	l1_pin_close(pn);
}
END_TEST

START_TEST(test_mock_defer_and_readonly)
{
	struct mock m;
	struct l1_pin *pn = NULL;
	const uint64_t MB = 1 << 20;
	char *ro = reserve(8 * MB, PROT_READ);

	mock_load(&m);
	ck_assert_int_eq(l1_pin_open(L1_PIN_DEFER, 0, &pn), 0);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_DEFERRED);
	ck_assert_str_eq(l1_pin_reason(pn), "registration deferred to first use");
	/* A read-only mapping is registered read-only. */
	ck_assert_int_eq(l1_pin_chunk(pn, ro, 8 * MB), 0);
	ck_assert_uint_eq(*m.last_flags, 1 | 8);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_PINNED);
	l1_pin_close(pn);
	ck_assert_int_eq(*m.live, 0);
	munmap(ro, 8 * MB);
}
END_TEST

struct thr_arg {
	struct l1_pin *pn;
	char *base;
	int idx;
};

static void *pin_thread(void *p)
{
	struct thr_arg *t = p;
	for (int i = 0; i < 64; i++)
		if (l1_pin_chunk(t->pn, t->base + ((uint64_t)(i * 4 + t->idx) << 20), 1 << 20))
			return (void *)1;
	return NULL;
}

START_TEST(test_mock_threads)
{
	struct mock m;
	struct l1_pin *pn = NULL;
	pthread_t th[4];
	struct thr_arg ta[4];
	static struct l1_range rg[256];
	char *base = reserve(256ull << 20, PROT_READ | PROT_WRITE);

	mock_load(&m);
	ck_assert_int_eq(l1_pin_open(L1_PIN_AUTO, 0, &pn), 0);
	for (int i = 0; i < 4; i++) {
		ta[i] = (struct thr_arg){ pn, base, i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, pin_thread, &ta[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		ck_assert_ptr_null(r);
	}
	ck_assert_uint_eq(l1_pin_bytes(pn), 256ull << 20);
	ck_assert_int_eq(l1_pin_ranges(pn, base, rg, 256), 256);
	for (int i = 0; i < 256; i++)
		ck_assert_uint_eq(rg[i].offset, (uint64_t)i << 20);
	ck_assert_uint_eq(l1_pin_status(pn), L1_PIN_PINNED);
	l1_pin_close(pn);
	ck_assert_int_eq(*m.live, 0);
	munmap(base, 256ull << 20);
}
END_TEST

/* ---- through a pool ---------------------------------------------------- */

static void expect_pool_unpinned(const char *cudart, const char *want_prefix)
{
	struct l1_config c;
	struct l1_arena *a = NULL;
	struct l1_client_info ci[8];
	struct l1_vm_space vm;
	struct l1_range rg[4];
	int r, n, found = 0;

	if (cudart)
		setenv("L1ARENA_CUDART", cudart, 1);
	else
		unsetenv("L1ARENA_CUDART");
	unsetenv("L1ARENA_PIN");
	l1t_config(&c, "pin", 64ull << 20);
	c.pin = L1_PIN_AUTO;
	r = l1_arena_create(&c, &a);
	ck_assert_msg(r == 0, "create: %s: %s", l1_strerror(r), l1_last_error());
	n = l1_arena_clients(a, ci, 8);
	ck_assert_int_ge(n, 1);
	for (int i = 0; i < n; i++) {
		if (ci[i].pid != getpid())
			continue;
		found = 1;
		ck_assert_uint_eq(ci[i].pin_status, L1_PIN_UNPINNED);
		ck_assert_uint_eq(ci[i].pinned_bytes, 0);
		ck_assert_msg(!strncmp(ci[i].pin_reason, want_prefix, strlen(want_prefix)),
			      "pin_reason: %s (want %s...)", ci[i].pin_reason, want_prefix);
	}
	ck_assert_msg(found, "no client entry for this process");
	ck_assert_int_eq(l1_get_vm_space(a, &vm), 0);
	ck_assert_uint_eq(vm.pinned, 0);
	ck_assert_int_eq(l1_arena_pinned_ranges(a, rg, 4), 0);
	l1t_destroy(a);
}

START_TEST(test_pool_missing_library)
{
	expect_pool_unpinned("/nonexistent/libcudart.so",
			     "no libcudart: cannot load L1ARENA_CUDART=/nonexistent/");
}
END_TEST

START_TEST(test_pool_no_driver)
{
	char text[256], want[300];
	switch (probe_real(NULL, text, sizeof text)) {
	case REAL_NOLIB:
		expect_pool_unpinned(NULL, "no libcudart: tried");
		break;
	case REAL_NODRIVER:
		snprintf(want, sizeof want, "no CUDA driver: %s", text);
		expect_pool_unpinned(NULL, want);
		break;
	case REAL_NODEVICE:
		expect_pool_unpinned(NULL, "no CUDA device");
		break;
	case REAL_OTHER_ERR:
		expect_pool_unpinned(NULL, "CUDA unusable");
		break;
	case REAL_GPU:
		break;                  /* tests/gpu covers a real GPU */
	}
}
END_TEST

START_TEST(test_pool_disabled)
{
	struct l1_config c;
	struct l1_arena *a = NULL;
	struct l1_client_info ci[8];
	int n;

	setenv("L1ARENA_PIN", "off", 1);
	l1t_config(&c, "pinoff", 64ull << 20);
	c.pin = L1_PIN_AUTO;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	n = l1_arena_clients(a, ci, 8);
	ck_assert_int_ge(n, 1);
	for (int i = 0; i < n; i++) {
		if (ci[i].pid != getpid())
			continue;
		ck_assert_uint_eq(ci[i].pin_status, L1_PIN_NONE);
		ck_assert_str_eq(ci[i].pin_reason, "turned off by the environment: L1ARENA_PIN=off");
	}
	l1t_destroy(a);
	unsetenv("L1ARENA_PIN");
}
END_TEST

START_TEST(test_pool_mock_pinned)
{
	struct mock m;
	struct l1_config c;
	struct l1_arena *a = NULL;
	struct l1_client_info ci[8];
	struct l1_vm_space vm;
	struct l1_range rg[8];
	struct l1_obj o[4];
	int n, nr;

	mock_load(&m);
	l1t_config(&c, "pinmock", 64ull << 20);
	c.pin = L1_PIN_AUTO;
	c.grow_step_bytes = 16ull << 20;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	ck_assert_int_eq(l1_get_vm_space(a, &vm), 0);
	nr = l1_arena_pinned_ranges(a, rg, 8);
	ck_assert_int_ge(nr, 1);
	ck_assert_uint_eq(vm.pinned, (uint32_t)nr);
	ck_assert_int_le(nr, 8);
	/* Every object lies inside one registered range. */
	ck_assert_int_eq(l1_alloc_bytes(a, 1 << 20, 4, o), 0);
	for (int i = 0; i < 4; i++) {
		int in = 0;
		for (int j = 0; j < nr; j++)
			in |= o[i].offset >= rg[j].offset &&
			      o[i].offset + o[i].size <= rg[j].offset + rg[j].len;
		ck_assert_msg(in, "object %d at %llu not inside a pinned range", i,
			      (unsigned long long)o[i].offset);
	}
	n = l1_arena_clients(a, ci, 8);
	for (int i = 0; i < n; i++)
		if (ci[i].pid == getpid()) {
			ck_assert_uint_eq(ci[i].pin_status, L1_PIN_PINNED);
			ck_assert_uint_eq(ci[i].pinned_bytes, *m.bytes);
		}
	ck_assert_int_eq(l1_free(a, o, 4), 0);
	l1t_destroy(a);
	ck_assert_int_eq(*m.live, 0);               /* detach unregistered all */
}
END_TEST

/* A lazy pool grows inside l1_alloc: the objects that call hands out must
 * already be registered, in the process that grew it. */
START_TEST(test_pool_mock_lazy_growth)
{
	struct mock m;
	struct l1_config c;
	struct l1_arena *a = NULL;
	struct l1_vm_space vm0, vm1;
	struct l1_obj o[24];
	const uint64_t MB = 1 << 20;

	mock_load(&m);
	l1t_config(&c, "pinlazy", 64 * MB);
	c.pin = L1_PIN_AUTO;
	c.lazy = 1;
	c.init_size_bytes = 8 * MB;
	c.grow_step_bytes = 8 * MB;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	ck_assert_int_eq(l1_get_vm_space(a, &vm0), 0);
	int n = 0, bad = -1, r = 0;
	unsigned long long bad_off = 0, bad_reg = 0;
	/* Checked after the pool is gone, so that a failure leaves no file. */
	for (; n < 24 && r == 0; n++) {
		r = l1_alloc_bytes(a, 2 * MB, 1, &o[n]);
		if (r == 0 && bad < 0 && !mock_is_registered(&m, o[n].ptr, o[n].size)) {
			bad = n;
			bad_off = o[n].offset / MB;
			bad_reg = *m.bytes / MB;
		}
	}
	if (r)
		n--;
	ck_assert_int_eq(l1_get_vm_space(a, &vm1), 0);
	unsigned long long pinned = *m.bytes;
	ck_assert_int_eq(l1_free(a, o, (uint32_t)n), 0);
	l1t_destroy(a);
	ck_assert_msg(r == 0, "alloc %d: %s", n, l1_strerror(r));
	ck_assert_msg(bad < 0, "object %d (offset %llu MiB) handed out unregistered by the "
		      "l1_alloc that grew the pool; %llu MiB registered", bad, bad_off, bad_reg);
	ck_assert_uint_gt(vm1.committed, vm0.committed);
	ck_assert_uint_ge(pinned, vm1.committed);
	ck_assert_int_eq(*m.live, 0);
}
END_TEST

/* tests/gpu/gpu_pin.c must build without the CUDA toolkit, and its checks
 * must pass against tests/gpu/mock_cudart.c (a dry run of tests/gpu/run.sh
 * at small sizes).  Needs the source tree as the working directory (as
 * tests/run.sh runs us) and $BUILD/lib/libl1arena.a. */
START_TEST(test_gpu_program_dry_run)
{
	const char *build = getenv("BUILD");
	const char *cc = getenv("CC");
	char lib[256], cmd[2048], dir[128];
	const char *san = "";
	int r;

	if (!build || !*build)
		build = "build";
	snprintf(lib, sizeof lib, "%s/lib/libl1arena.a", build);
	if (access("tests/gpu/gpu_pin.c", R_OK) || access(lib, R_OK)) {
		printf("gpu_program_dry_run: not in the source tree or no %s; not run\n", lib);
		return;
	}
	if (strstr(build, "asan"))
		san = "-fsanitize=address,undefined";
	else if (strstr(build, "tsan"))
		san = "-fsanitize=thread";
	ck_assert_ptr_nonnull(mkdtemp(strcpy(dir, "/tmp/l1pin-gpu.XXXXXX")));
	snprintf(cmd, sizeof cmd,
		 "set -e; c=%s; $c -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iarena %s "
		 "-o %s/gpu_pin tests/gpu/gpu_pin.c %s "
		 "$(pkg-config --libs liburing 2>/dev/null || echo -luring) -ldl -lpthread; "
		 "$c -std=gnu11 -Wall -Wextra -Werror -shared -fPIC -o %s/libcudart_mock.so "
		 "tests/gpu/mock_cudart.c -lpthread",
		 cc && *cc ? cc : "cc", san, dir, lib, dir);
	r = system(cmd);
	ck_assert_msg(r == 0, "building tests/gpu/gpu_pin.c or the mock failed: %s", cmd);
	const char *pools = getenv("L1_TEST_DIR");
	if (!pools || !*pools)
		pools = l1t_shm_dir();
	snprintf(cmd, sizeof cmd, "L1ARENA_CUDART=%s/libcudart_mock.so %s/gpu_pin --small "
		 "--dir %s %s all", dir, dir, pools, l1t_on_hugetlbfs() ? "" : "--allow-shm");
	r = system(cmd);
	snprintf(lib, sizeof lib, "rm -rf %s", dir);
	if (system(lib) != 0)
		printf("could not remove %s\n", dir);
	ck_assert_msg(WIFEXITED(r) && WEXITSTATUS(r) == 0,
		      "gpu_pin dry run against the mock libcudart failed (status %d)", r);
}
END_TEST

static Suite *pin_suite(void)
{
	Suite *s = suite_create("pin");
	struct { const char *name; const TTest *t; int mock; } cases[] = {
		{ "no_driver", test_no_driver, 0 },
		{ "missing_library", test_missing_library, 0 },
		{ "disabled", test_disabled, 0 },
		{ "inactive_chunk", test_inactive_chunk, 0 },
		{ "ranges_empty_close_null", test_ranges_empty_close_null, 0 },
		{ "mock_pin_and_close", test_mock_pin_and_close, 1 },
		{ "mock_failure_not_counted", test_mock_failure_not_counted, 1 },
		{ "mock_no_device", test_mock_no_device, 1 },
		{ "mock_defer_and_readonly", test_mock_defer_and_readonly, 1 },
		{ "mock_threads", test_mock_threads, 1 },
		{ "pool_missing_library", test_pool_missing_library, 0 },
		{ "pool_no_driver", test_pool_no_driver, 0 },
		{ "pool_disabled", test_pool_disabled, 0 },
		{ "pool_mock_pinned", test_pool_mock_pinned, 1 },
		{ "pool_mock_lazy_growth", test_pool_mock_lazy_growth, 1 },
		{ "gpu_program_dry_run", test_gpu_program_dry_run, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		TCase *tc = tcase_create(cases[i].name);
		if (cases[i].mock)
			tcase_add_unchecked_fixture(tc, mock_build, mock_remove);
		tcase_add_test(tc, cases[i].t);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pin_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
