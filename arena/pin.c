/*
 * pin.c - registers this process's mapping of the pool with the CUDA runtime
 * (cudaHostRegister), so that copies between the pool and a GPU run as DMA.
 * libcudart is found with dlopen at l1_pin_open and never linked, and no
 * CUDA header is included: the few prototypes and constants used are
 * declared below, so the build needs no toolkit and one binary runs with and
 * without CUDA.  A module is either active (library loaded, at least one
 * device) or inactive, with the library unloaded again, a sentence in
 * reason saying why (disabled, no library, no driver, no device), and every
 * chunk refused with -ENODEV.
 * Invariants: `ranges` holds, sorted by address and never overlapping, every
 * chunk handed to an active module that was not a caller's mistake (NULL,
 * empty, overlapping an earlier chunk); each is either registered (ok = 1,
 * ours, unregistered at close) or failed (ok = 0: over 64 GiB or refused by
 * CUDA; the same chunk handed in again is retried).  `bytes` and `npinned`
 * count registered ranges only, so a chunk that failed is never reported as
 * pinned; status is PINNED only when something is registered and nothing
 * failed, and while a chunk stays failed reason is the latest failure.
 * l1_pin_ranges returns how many ranges are registered and writes at most
 * max of them (max = 0 with out = NULL only counts), like snprintf.
 * Locking: one mutex guards everything after open; the read-only getters
 * take it too (the struct is not const underneath).  l1_pin_reason returns a
 * pointer into the module, rewritten only when a chunk fails: copy it if
 * another thread may pin at the same time.  Never close while another thread
 * of this process still copies from the pool: close unregisters.
 */
#include "pin.h"
#include "l1arena.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PIN_MAX_CHUNK (64ull << 30)
/* NODELETE: dlclose at close drops our reference but never unmaps the
 * runtime (and the driver it loaded) under a live CUDA context; pools are
 * opened and closed many times in one process and CUDA is not meant to be
 * torn down and brought up again. */
#define PIN_DLFLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)
#define PIN_MSG_MAX 256

/* The CUDA runtime ABI we rely on (driver_types.h / cuda_runtime_api.h). */
typedef int cuda_err;
enum {
	CUDA_SUCCESS = 0,
	CUDA_ERR_INVALID_VALUE = 1,
	CUDA_ERR_MEMORY_ALLOCATION = 2,
	CUDA_ERR_INSUFFICIENT_DRIVER = 35,
	CUDA_ERR_NO_DEVICE = 100,
	CUDA_ERR_HOST_ALREADY_REGISTERED = 712,
	CUDA_ERR_HOST_NOT_REGISTERED = 713,
	CUDA_ERR_NOT_SUPPORTED = 801,
};
enum {
	CUDA_HOST_REGISTER_PORTABLE = 0x1,
	CUDA_HOST_REGISTER_MAPPED = 0x2,
	CUDA_HOST_REGISTER_READ_ONLY = 0x8,
};

struct cudart {
	void *dl;
	cuda_err (*get_device_count)(int *count);
	const char *(*get_error_string)(cuda_err e);
	cuda_err (*host_register)(void *p, size_t len, unsigned flags);
	cuda_err (*host_unregister)(void *p);
};

struct pin_range {
	uintptr_t start;
	uint64_t len;
	int ok;                         /* 1 registered by us, 0 failed */
};

struct l1_pin {
	pthread_mutex_t mu;
	int32_t mode;
	int32_t mapped;
	int active;                     /* library loaded and a device present */
	int disabled;                   /* by config or env: status NONE */
	struct cudart rt;
	struct pin_range *ranges;       /* sorted by start */
	uint32_t nranges;
	uint32_t cap;
	uint32_t npinned;
	uint32_t nfailed;
	uint64_t bytes;
	char lib[PIN_MSG_MAX];          /* the name that loaded */
	char reason[PIN_MSG_MAX];       /* why inactive, or what pins */
	char fail_reason[PIN_MSG_MAX];  /* the latest chunk failure */
};

static const char *const default_libs[] = {
	"libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11",
	"/usr/local/cuda/lib64/libcudart.so", "/usr/local/cuda/lib64/libcudart.so.13",
	"/usr/local/cuda/lib64/libcudart.so.12", "/usr/local/cuda/lib64/libcudart.so.11",
};
#define NLIBS (sizeof default_libs / sizeof *default_libs)

static void set_msg(char *dst, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_msg(char *dst, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dst, PIN_MSG_MAX, fmt, ap);
	va_end(ap);
}

static const char *cuda_str(const struct cudart *rt, cuda_err e)
{
	const char *s = rt->get_error_string ? rt->get_error_string(e) : NULL;
	return s ? s : "unknown CUDA error";
}

static int env_says_off(void)
{
	const char *v = getenv("L1ARENA_PIN");
	if (!v)
		return 0;
	return !strcasecmp(v, "off") || !strcasecmp(v, "0") || !strcasecmp(v, "no") ||
	       !strcasecmp(v, "false") || !strcasecmp(v, "disable") ||
	       !strcasecmp(v, "disabled") || !strcasecmp(v, "none");
}

/* Loads libcudart and its symbols into pn->rt, or says why not in reason. */
static int load_cudart(struct l1_pin *pn)
{
	const char *env = getenv("L1ARENA_CUDART");
	void *dl = NULL;

	if (env && *env) {
		dl = dlopen(env, PIN_DLFLAGS);
		if (!dl) {
			const char *e = dlerror();
			size_t n = strlen(env);
			/* dlerror repeats the name: "NAME: why"; keep the why. */
			if (e && !strncmp(e, env, n) && !strncmp(e + n, ": ", 2))
				e += n + 2;
			set_msg(pn->reason, "no libcudart: cannot load L1ARENA_CUDART=%s: %s",
				env, e ? e : "dlopen failed");
			return -ENOENT;
		}
		set_msg(pn->lib, "%s", env);
	} else {
		/* First the runtime the application already loaded, if any, so
		 * that we share its state; then the usual names. */
		for (int pass = 0; !dl && pass < 2; pass++) {
			int flags = PIN_DLFLAGS | (pass ? 0 : RTLD_NOLOAD);
			for (size_t i = 0; !dl && i < NLIBS; i++) {
				dl = dlopen(default_libs[i], flags);
				if (dl)
					set_msg(pn->lib, "%s", default_libs[i]);
			}
		}
		if (!dl) {
			set_msg(pn->reason, "no libcudart: tried libcudart.so{,.13,.12,.11} "
				"and /usr/local/cuda/lib64 (set L1ARENA_CUDART)");
			return -ENOENT;
		}
	}
	pn->rt.dl = dl;
	*(void **)&pn->rt.get_device_count = dlsym(dl, "cudaGetDeviceCount");
	*(void **)&pn->rt.get_error_string = dlsym(dl, "cudaGetErrorString");
	*(void **)&pn->rt.host_register = dlsym(dl, "cudaHostRegister");
	*(void **)&pn->rt.host_unregister = dlsym(dl, "cudaHostUnregister");
	if (!pn->rt.get_device_count || !pn->rt.host_register || !pn->rt.host_unregister) {
		set_msg(pn->reason, "%s lacks cudaGetDeviceCount/cudaHostRegister/"
			"cudaHostUnregister: not a CUDA runtime", pn->lib);
		return -ENOENT;
	}
	return 0;
}

/* Asks the runtime for a device; 0 if at least one, else reason is set. */
static int probe_devices(struct l1_pin *pn)
{
	int n = 0;
	cuda_err e = pn->rt.get_device_count(&n);

	if (e == CUDA_ERR_INSUFFICIENT_DRIVER) {
		set_msg(pn->reason, "no CUDA driver: %s", cuda_str(&pn->rt, e));
		return -ENODEV;
	}
	if (e == CUDA_ERR_NO_DEVICE) {
		set_msg(pn->reason, "no CUDA device: %s", cuda_str(&pn->rt, e));
		return -ENODEV;
	}
	if (e != CUDA_SUCCESS) {
		set_msg(pn->reason, "CUDA unusable: %s (error %d from cudaGetDeviceCount)",
			cuda_str(&pn->rt, e), e);
		return -ENODEV;
	}
	if (n <= 0) {
		set_msg(pn->reason, "no CUDA device: cudaGetDeviceCount found none");
		return -ENODEV;
	}
	set_msg(pn->reason, "registered with cudaHostRegister (%s) via %s, %d device%s",
		pn->mapped ? "portable|mapped" : "portable", pn->lib, n, n == 1 ? "" : "s");
	return 0;
}

int l1_pin_open(int32_t mode, int32_t mapped, struct l1_pin **out)
{
	struct l1_pin *pn;
	int r = 0;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (mode != L1_PIN_OFF && mode != L1_PIN_AUTO && mode != L1_PIN_DEFER)
		return -EINVAL;
	pn = calloc(1, sizeof *pn);
	if (!pn)
		return -ENOMEM;
	r = pthread_mutex_init(&pn->mu, NULL);
	if (r) {
		r = -r;
		goto out_free;
	}
	pn->mode = mode;
	pn->mapped = !!mapped;
	if (mode == L1_PIN_OFF) {
		pn->disabled = 1;
		set_msg(pn->reason, "not asked: pin = L1_PIN_OFF in the open options");
		goto out_ok;
	}
	if (env_says_off()) {
		pn->disabled = 1;
		set_msg(pn->reason, "turned off by the environment: L1ARENA_PIN=off");
		goto out_ok;
	}
	/* Lack of CUDA is a state, not an error: the module stays, inactive. */
	if (load_cudart(pn) == 0 && probe_devices(pn) == 0)
		pn->active = 1;
	if (!pn->active && pn->rt.dl) {
		dlclose(pn->rt.dl);
		memset(&pn->rt, 0, sizeof pn->rt);
	}
out_ok:
	*out = pn;
	return 0;
out_free:
	free(pn);
	return r;
}

/* Whether every page of [start, start+len) is mapped writable, read from
 * /proc/self/maps; 1 when that cannot be told (the common case). */
static int range_writable(uintptr_t start, uint64_t len)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	uintptr_t pos = start, end = start + len;
	int writable = 1;

	if (!f)
		return 1;
	while (pos < end && fgets(line, sizeof line, f)) {
		uintptr_t lo = 0, hi = 0;
		char perms[8] = "";
		int ok = sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &lo, &hi, perms) == 3;
		/* Long lines (paths): skip the rest so the next read is a new line. */
		while (!strchr(line, '\n') && fgets(line, sizeof line, f))
			;
		if (!ok || hi <= pos || lo > pos)
			continue;
		if (perms[1] != 'w') {
			writable = 0;
			break;
		}
		pos = hi;
	}
	fclose(f);
	return writable;
}

static int cuda_errno(cuda_err e)
{
	switch (e) {
	case CUDA_ERR_INVALID_VALUE:
		return -EINVAL;
	case CUDA_ERR_MEMORY_ALLOCATION:
		return -ENOMEM;
	case CUDA_ERR_HOST_ALREADY_REGISTERED:
		return -EEXIST;
	case CUDA_ERR_NOT_SUPPORTED:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

/* Index of the first range ending after start (ranges are sorted). */
static uint32_t find_pos(const struct l1_pin *pn, uintptr_t start)
{
	uint32_t lo = 0, hi = pn->nranges;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (pn->ranges[mid].start + pn->ranges[mid].len <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int insert_range(struct l1_pin *pn, uint32_t at, uintptr_t start, uint64_t len)
{
	if (pn->nranges == pn->cap) {
		uint32_t cap = pn->cap ? pn->cap * 2 : 16;
		struct pin_range *r = realloc(pn->ranges, cap * sizeof *r);
		if (!r)
			return -ENOMEM;
		pn->ranges = r;
		pn->cap = cap;
	}
	memmove(&pn->ranges[at + 1], &pn->ranges[at],
		(pn->nranges - at) * sizeof *pn->ranges);
	pn->ranges[at] = (struct pin_range){ .start = start, .len = len, .ok = 0 };
	pn->nranges++;
	pn->nfailed++;                  /* failed until registration says otherwise */
	return 0;
}

/* Registers one range (already recorded as failed); updates the counts. */
static int register_range(struct l1_pin *pn, struct pin_range *rg)
{
	unsigned flags = CUDA_HOST_REGISTER_PORTABLE;
	const char *ro = "";
	cuda_err e;

	if (rg->len > PIN_MAX_CHUNK) {
		set_msg(pn->fail_reason, "chunk of %" PRIu64 " MiB not registered: over "
			"the 64 GiB one registration may hold", rg->len >> 20);
		return -EINVAL;
	}
	if (pn->mapped)
		flags |= CUDA_HOST_REGISTER_MAPPED;
	/* A read-only attach maps PROT_READ; CUDA must not ask for write access. */
	if (!range_writable(rg->start, rg->len)) {
		flags |= CUDA_HOST_REGISTER_READ_ONLY;
		ro = " read-only";
	}
	e = pn->rt.host_register((void *)rg->start, rg->len, flags);
	if (e != CUDA_SUCCESS) {
		set_msg(pn->fail_reason, "cudaHostRegister refused %" PRIu64 " MiB%s: "
			"%s (error %d)", rg->len >> 20, ro, cuda_str(&pn->rt, e), e);
		return cuda_errno(e);
	}
	rg->ok = 1;
	pn->nfailed--;
	pn->npinned++;
	pn->bytes += rg->len;
	return 0;
}

int l1_pin_chunk(struct l1_pin *pn, void *p, uint64_t len)
{
	uintptr_t start = (uintptr_t)p;
	uint32_t at;
	int r = 0;

	if (!pn || !p || !len || start + len < start)
		return -EINVAL;
	pthread_mutex_lock(&pn->mu);
	if (!pn->active) {
		r = -ENODEV;
		goto out_unlock;
	}
	at = find_pos(pn, start);
	if (at < pn->nranges && pn->ranges[at].start < start + len) {
		struct pin_range *rg = &pn->ranges[at];
		/* The same chunk again: done if registered, retried if it failed. */
		if (rg->start == start && rg->len == len) {
			r = rg->ok ? 0 : register_range(pn, rg);
			goto out_unlock;
		}
		if (rg->ok && rg->start <= start && start + len <= rg->start + rg->len)
			goto out_unlock;
		r = -EINVAL;            /* a caller's bug: overlaps an earlier chunk */
		goto out_unlock;
	}
	r = insert_range(pn, at, start, len);
	if (r) {
		set_msg(pn->fail_reason, "out of memory recording a pinned range");
		goto out_unlock;
	}
	r = register_range(pn, &pn->ranges[at]);
out_unlock:
	pthread_mutex_unlock(&pn->mu);
	return r;
}

void l1_pin_close(struct l1_pin *pn)
{
	if (!pn)
		return;
	pthread_mutex_lock(&pn->mu);
	for (uint32_t i = pn->nranges; i-- > 0;)
		if (pn->ranges[i].ok)
			pn->rt.host_unregister((void *)pn->ranges[i].start);
	free(pn->ranges);
	pn->ranges = NULL;
	pn->nranges = pn->npinned = pn->nfailed = 0;
	pn->bytes = 0;
	if (pn->rt.dl)
		dlclose(pn->rt.dl);
	pthread_mutex_unlock(&pn->mu);
	pthread_mutex_destroy(&pn->mu);
	free(pn);
}

static void lock_const(const struct l1_pin *pn)
{
	pthread_mutex_lock((pthread_mutex_t *)&pn->mu);
}

static void unlock_const(const struct l1_pin *pn)
{
	pthread_mutex_unlock((pthread_mutex_t *)&pn->mu);
}

uint32_t l1_pin_status(const struct l1_pin *pn)
{
	uint32_t s;

	if (!pn)
		return L1_PIN_NONE;
	lock_const(pn);
	if (pn->disabled)
		s = L1_PIN_NONE;
	else if (!pn->active || pn->nfailed)
		s = L1_PIN_UNPINNED;
	else if (pn->npinned)
		s = L1_PIN_PINNED;
	else
		s = pn->mode == L1_PIN_DEFER ? L1_PIN_DEFERRED : L1_PIN_UNPINNED;
	unlock_const(pn);
	return s;
}

const char *l1_pin_reason(const struct l1_pin *pn)
{
	const char *s;

	if (!pn)
		return "pinning not set up";
	lock_const(pn);
	if (pn->active && pn->nfailed)
		s = pn->fail_reason;
	else if (pn->active && !pn->npinned)
		s = pn->mode == L1_PIN_DEFER ? "registration deferred to first use"
					     : "nothing registered yet";
	else
		s = pn->reason;
	unlock_const(pn);
	return s;
}

uint64_t l1_pin_bytes(const struct l1_pin *pn)
{
	uint64_t b;

	if (!pn)
		return 0;
	lock_const(pn);
	b = pn->bytes;
	unlock_const(pn);
	return b;
}

int l1_pin_ranges(const struct l1_pin *pn, const void *base, struct l1_range *out,
		  uint32_t max)
{
	uint32_t n = 0;

	if (!pn)
		return 0;
	if (max && !out)
		return -EINVAL;
	lock_const(pn);
	for (uint32_t i = 0; i < pn->nranges; i++) {
		const struct pin_range *rg = &pn->ranges[i];
		if (!rg->ok)
			continue;
		if (n < max) {
			out[n].offset = (uint64_t)(rg->start - (uintptr_t)base);
			out[n].len = rg->len;
		}
		n++;
	}
	unlock_const(pn);
	return (int)n;
}
