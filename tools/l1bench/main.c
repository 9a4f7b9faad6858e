/*
 * main.c - l1bench: runs benchmark scenarios by name and prints each figure
 * beside its baseline from the same run, as a table for people or one JSON
 * object per line (--json).  The header describes the machine.  Scenario
 * files register through the weak symbols in bench.h; this file owns the
 * option parsing and the report format, nothing else.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t bench_process_cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

void bench_report(const struct bench_ctx *c, const char *scenario, const char *metric,
		  double value, const char *unit, const char *baseline_name, double baseline,
		  const char *goal, int met)
{
	if (c->json) {
		printf("{\"scenario\":");
		json_str(scenario);
		printf(",\"metric\":");
		json_str(metric);
		printf(",\"value\":%.6g,\"unit\":", value);
		json_str(unit);
		if (baseline_name) {
			printf(",\"baseline\":");
			json_str(baseline_name);
			printf(",\"baseline_value\":%.6g", baseline);
		}
		if (goal) {
			printf(",\"goal\":");
			json_str(goal);
		}
		if (met >= 0)
			printf(",\"met\":%s", met ? "true" : "false");
		printf("}\n");
	} else {
		char base[96] = "";
		if (baseline_name)
			snprintf(base, sizeof base, "%.4g (%s)", baseline, baseline_name);
		printf("%-9s %-38s %12.4g %-8s %-30s %-22s %s\n", scenario, metric, value, unit,
		       base, goal ? goal : "", met < 0 ? "" : met ? "met" : "MISSED");
	}
	fflush(stdout);
}

void bench_note(const struct bench_ctx *c, const char *scenario, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (c->json) {
		printf("{\"scenario\":");
		json_str(scenario);
		printf(",\"note\":");
		json_str(buf);
		printf("}\n");
	} else {
		printf("# %s: %s\n", scenario, buf);
	}
	fflush(stdout);
}

static int is_hugetlbfs(const char *dir)
{
	struct statfs sf;
	return statfs(dir, &sf) == 0 && (uint64_t)sf.f_type == 0x958458f6ull;
}

const char *bench_pool_path(const struct bench_ctx *c, const char *name, char *buf,
			    unsigned len)
{
	const char *dir = c->dir;
	if (!dir)
		dir = is_hugetlbfs("/dev/hugepages") ? "/dev/hugepages" : "/dev/shm";
	snprintf(buf, len, "%s/l1bench-%s-%d", dir, name, (int)getpid());
	return buf;
}

struct l1_arena *bench_create(const struct bench_ctx *c, const char *name, uint64_t size,
			      int lazy, int zero_on_free)
{
	return bench_create_objs(c, name, size, lazy, zero_on_free, 0);
}

struct l1_arena *bench_create_objs(const struct bench_ctx *c, const char *name, uint64_t size,
				   int lazy, int zero_on_free, uint64_t max_objects)
{
	char path[512];
	struct l1_config cfg;
	struct l1_arena *a;
	l1_config_init(&cfg);
	cfg.path = bench_pool_path(c, name, path, sizeof path);
	cfg.size_bytes = size;
	cfg.lazy = lazy;
	cfg.zero_on_free = zero_on_free;
	cfg.max_objects = max_objects;
	cfg.pin = L1_PIN_OFF;
	char dir[512];
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = 0;
	cfg.allow_shm = c->allow_shm || !is_hugetlbfs(dir);
	cfg.force = 1;
	int r = l1_arena_create(&cfg, &a);
	if (r) {
		bench_note(c, name, "cannot create a %llu MiB pool at %s: %s",
			   (unsigned long long)(size >> 20), path, l1_last_error());
		return NULL;
	}
	return a;
}

void bench_destroy(struct l1_arena *a)
{
	char p[512];
	if (!a)
		return;
	snprintf(p, sizeof p, "%s", l1_arena_path(a));
	l1_arena_close(a);
	l1_arena_destroy(p, 1);
}

static void machine_header(const struct bench_ctx *c)
{
	struct utsname u;
	char model[256] = "unknown cpu", line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "model name", 10)) {
			char *p = strchr(line, ':');
			if (p) {
				snprintf(model, sizeof model, "%s", p + 2);
				model[strcspn(model, "\n")] = 0;
			}
			break;
		}
	if (f)
		fclose(f);
	uname(&u);
	long mem_mb = sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) / 1024;
	time_t now = time(NULL);
	char date[32];
	strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
	bench_note(c, "machine", "%s; %ld cores; %ld MiB RAM; %s %s %s; %s%s", model,
		   sysconf(_SC_NPROCESSORS_ONLN), mem_mb, u.sysname, u.release, u.machine, date,
		   c->quick ? "; --quick sizes" : "");
	if (!c->json)
		printf("%-9s %-38s %12s %-8s %-30s %-22s %s\n", "SCENARIO", "METRIC", "VALUE",
		       "UNIT", "BASELINE (same run)", "GOAL", "");
}

static const char *const scenario_names[] = {
	"alloc", "alloc-mp", "meta", "zero", "view", "kv", "h2d", "xfer",
	"contend", "sustain",
};
#define NSCENARIOS (sizeof scenario_names / sizeof scenario_names[0])

/* The scenario's function, NULL if not linked; *known = 0 for a bad name. */
static bench_fn lookup(const char *name, int *known)
{
	bench_fn fns[NSCENARIOS] = {
		bench_alloc, bench_alloc_mp, bench_meta, bench_zero, bench_view, bench_kv,
		bench_h2d, bench_xfer, bench_contend, bench_sustain,
	};
	for (unsigned i = 0; i < NSCENARIOS; i++)
		if (!strcmp(name, scenario_names[i])) {
			*known = 1;
			return fns[i];
		}
	*known = 0;
	return NULL;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: l1bench [--json] [--quick] [--dir DIR] [--allow-shm] [--iters N] "
		"[--mount VIEW] [SCENARIO...]\n"
		"scenarios: alloc alloc-mp meta zero view kv h2d xfer contend sustain (default: all)\n"
		"Each figure is printed beside its baseline measured in the same run.\n"
		"Pools go to --dir (default /dev/hugepages if hugetlbfs is mounted there, "
		"else /dev/shm).\n");
}

int main(int argc, char **argv)
{
	struct bench_ctx c;
	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' }, { "quick", no_argument, 0, 'q' },
		{ "dir", required_argument, 0, 'd' }, { "allow-shm", no_argument, 0, 's' },
		{ "iters", required_argument, 0, 'i' }, { "mount", required_argument, 0, 'm' },
		{ "help", no_argument, 0, 'h' }, { "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 }
	};
	int o, failed = 0;
	memset(&c, 0, sizeof c);
	while ((o = getopt_long(argc, argv, "jqd:si:m:h", opts, NULL)) != -1) {
		switch (o) {
		case 'j': c.json = 1; break;
		case 'q': c.quick = 1; break;
		case 'd': c.dir = optarg; break;
		case 's': c.allow_shm = 1; break;
		case 'i': c.iters = strtoull(optarg, NULL, 10); break;
		case 'm': c.view = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V':
			printf("l1bench (l1arena) %d.%d\n", L1_VERSION_MAJOR, L1_VERSION_MINOR);
			return 0;
		default: usage(stderr); return 2;
		}
	}
	if (getenv("L1BENCH_QUICK"))
		c.quick = 1;
	machine_header(&c);
	unsigned n = optind < argc ? (unsigned)(argc - optind) : NSCENARIOS;
	for (unsigned i = 0; i < n; i++) {
		const char *name = optind < argc ? argv[optind + (int)i] : scenario_names[i];
		int known;
		bench_fn fn = lookup(name, &known);
		if (!known) {
			fprintf(stderr, "l1bench: unknown scenario '%s'\n", name);
			usage(stderr);
			return 2;
		}
		if (!fn)
			bench_note(&c, name, "not built in this binary");
		else if (fn(&c))
			failed++;
	}
	return failed ? 1 : 0;
}
