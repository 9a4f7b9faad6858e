/*
 * text.c - growable text buffers and the few formats the view's files share
 * (sizes in binary units, UTC timestamps, Prometheus label escaping).  A
 * buffer that cannot grow keeps what it has and sets oom; callers turn that
 * into ENOMEM instead of serving a cut text.  No state, no locks.
 */
#include "l1fs.h"
#include "../tools/common/l1text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int buf_reserve(struct l1fs_buf *b, size_t more)
{
	if (b->oom)
		return -1;
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void l1fs_buf_printf(struct l1fs_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n))
		return;
	if ((size_t)n < sizeof small) {
		memcpy(b->p + b->len, small, (size_t)n + 1);
	} else {
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void l1fs_buf_free(struct l1fs_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

void l1fs_buf_label(struct l1fs_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			l1fs_buf_printf(b, "\\\\");
		else if (*s == '"')
			l1fs_buf_printf(b, "\\\"");
		else if (*s == '\n')
			l1fs_buf_printf(b, "\\n");
		else
			l1fs_buf_printf(b, "%c", *s);
	}
}

const char *l1fs_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	return l1t_size(bytes, buf, len);       /* one style with l1ctl */
}

const char *l1fs_fmt_time(uint64_t ns, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)(ns / 1000000000ull);

	if (!ns || !gmtime_r(&t, &tm)) {
		snprintf(buf, len, "-");
		return buf;
	}
	char day[32];
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%09lluZ", day,
		 (unsigned long long)(ns % 1000000000ull));
	return buf;
}
