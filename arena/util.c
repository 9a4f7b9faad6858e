/*
 * util.c - small process-local helpers: error codes and the per-thread error
 * sentence (l1_last_error, like dlerror: thread-local, the only such state in
 * the library), clocks, this process's start time (from /proc/self/stat,
 * shown beside the pid; liveness never asks /proc, see client.c), hashing,
 * and size parsing.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static __thread char last_error[512];

const char *l1_last_error(void)
{
	return last_error;
}

int l1__err(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	return err;
}

const char *l1_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case -ENOMEM: return "out of memory in the pool";
	case -ENOSPC: return "object table full";
	case -EINVAL: return "invalid argument";
	case -EALREADY: return "object already freed";
	case -ESTALE: return "stale object id (slot reused)";
	case -EXDEV: return "object belongs to another pool";
	case -ENOENT: return "no such object, key or pool";
	case -EEXIST: return "already exists";
	case -EPERM: return "not permitted";
	case -EACCES: return "permission denied";
	case -EBUSY: return "busy";
	case -EPROTO: return "pool file has another format version";
	case -EBADMSG: return "not a valid pool file";
	case -ETIMEDOUT: return "timed out";
	case -ENODEV: return "no device";
	case -EROFS: return "read-only";
	default: return err < 0 && err > INT32_MIN ? strerror(-err) : "unknown";
	}
}

uint64_t l1__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t l1__mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Field 22 of /proc/PID/stat, after the ")" that ends the command name. */
int l1__proc_start(int32_t pid, uint64_t *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	for (int field = 3; field < 22 && *p; field++) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}

/* FNV-1a, then a final mix so low bits are usable for buckets. */
uint64_t l1__hash(const void *p, uint64_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (uint64_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

uint64_t l1__random64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, 0) != sizeof v)
		v = l1__now_ns() ^ ((uint64_t)getpid() << 32);
	return v ? v : 1;
}

int l1_parse_size(const char *s, uint64_t *out)
{
	if (!s || !out || !*s)
		return l1__err(-EINVAL, "empty size");
	/* decimal digits, an optional fraction, then the suffix: no spaces, no
	 * sign, no hex or exponent (strtod alone would take those) */
	size_t d = strspn(s, "0123456789");
	size_t f = s[d] == '.' ? strspn(s + d + 1, "0123456789") : 0;
	size_t n = d + (s[d] == '.' ? 1 + f : 0);
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (d == 0 || (s[d] == '.' && f == 0) || end != s + n || errno || !(v >= 0))
		return l1__err(-EINVAL, "'%s' is not a size: decimal digits and an optional "
			       "K, M, G or T (512M, 8G, 1.5G, 4096); no spaces, signs or hex", s);
	uint64_t mul = 1;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': mul = 1ull << 10; end++; break;
	case 'M': mul = 1ull << 20; end++; break;
	case 'G': mul = 1ull << 30; end++; break;
	case 'T': mul = 1ull << 40; end++; break;
	default: return l1__err(-EINVAL, "'%s': unknown size suffix (use K, M, G or T)", s);
	}
	if (mul > 1 && (*end == 'i' || *end == 'I'))
		end++;
	if (mul > 1 && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return l1__err(-EINVAL, "'%s' is not a size (try 512M, 8G, 4096)", s);
	double bytes = v * (double)mul;
	if (bytes >= 18446744073709551615.0)
		return l1__err(-EINVAL, "'%s' is too large", s);
	if (bytes != (double)(uint64_t)bytes)
		return l1__err(-EINVAL, "'%s' is not a whole number of bytes", s);
	*out = (uint64_t)bytes;
	return 0;
}
