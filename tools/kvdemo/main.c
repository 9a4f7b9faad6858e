/*
 * main.c - kvdemo, the KV-cache workload of `make run`: forks the evictor,
 * the writers and the readers (roles.c) on one pool, prints a progress line
 * every interval (objects, usage, write and read throughput, misses,
 * evictions), stops them after --seconds, then checks the pool (memcheck)
 * and prints a summary.  Exit status: 0 when every byte read was right,
 * every worker finished cleanly and memcheck found nothing; 1 otherwise
 * (the first error is printed as a sentence); 2 for a usage error.
 *
 * The driver and the workers share only the counters page (kvdemo.h).  On
 * SIGINT/SIGTERM the driver stops the workers in order, as at the end of the
 * run; workers ignore SIGINT so a Ctrl-C never kills one mid-operation.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvdemo.h"
#include "../common/l1text.h"

#define MAX_KIDS (KV_MAX_WRITERS + KV_MAX_READERS + 1)

static volatile sig_atomic_t got_signal;

uint64_t kv_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void kv_error(struct kv_stats *s, const char *fmt, ...)
{
	atomic_fetch_add(&s->errors, 1);
	if (atomic_exchange(&s->err_claimed, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->first_error, sizeof s->first_error, fmt, ap);
		va_end(ap);
	}
	atomic_store(&s->stop, 1);
}

static const char usage_text[] =
"usage: kvdemo [--arena PATH] [--view MOUNT] [--seconds S] [--writers N]\n"
"              [--readers N] [--write-rate MIBS] [--watermark F] [--low F]\n"
"              [--interval S] [--zipf S]\n"
"\n"
"The KV-cache workload of `make run` on an existing pool: writers allocate\n"
"256-token KV chunks by layout (Llama-3-8B, Mistral-7B layer by layer,\n"
"Qwen2-0.5B, TinyLlama-1.1B), fill and publish them under LMCache-style keys;\n"
"readers find them by key, through the l1fs view at MOUNT (open+mmap/read of\n"
"keys/NAME) and zero-copy by path (l1_open_path), and check every byte; an\n"
"evictor frees the oldest published objects when usage passes the watermark.\n"
"\n"
"  --arena PATH     the pool (default $L1ARENA_PATH, else the library's default)\n"
"  --view MOUNT     an l1fs mount of that pool; without it, reads are by key only\n"
"  --seconds S      how long to run (default 20)\n"
"  --writers N      writer processes (default 3, at most 16)\n"
"  --readers N      reader processes (default 2, at most 16)\n"
"  --write-rate M   MiB/s each writer writes at most (default 512; 0 = no limit)\n"
"  --watermark F    evict when used > F x pool (default 0.8)\n"
"  --low F          evict down to F x pool (default 0.7)\n"
"  --interval S     seconds between progress lines (default 1)\n"
"  --zipf S         Zipf exponent of the reads over requests, newest hottest (1.5)\n"
"\n"
"Exit status: 0 all reads verified, workers clean, memcheck clean; 1 otherwise;\n"
"2 usage error.\n";

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "kvdemo: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(see `kvdemo --help`)\n");
	return 2;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

static int parse(int argc, char **argv, struct kv_opts *o)
{
	static const struct option opts[] = {
		{ "arena", required_argument, 0, 'a' }, { "view", required_argument, 0, 'v' },
		{ "seconds", required_argument, 0, 's' }, { "writers", required_argument, 0, 'w' },
		{ "readers", required_argument, 0, 'r' },
		{ "write-rate", required_argument, 0, 'R' },
		{ "watermark", required_argument, 0, 'W' }, { "low", required_argument, 0, 'L' },
		{ "interval", required_argument, 0, 'i' }, { "zipf", required_argument, 0, 'z' },
		{ "help", no_argument, 0, 'h' }, { "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 }
	};
	double d;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': o->arena = optarg; break;
		case 'v': o->view = *optarg ? optarg : NULL; break;
		case 's':
			if (parse_double(optarg, 0.1, 86400, &o->seconds))
				return bad_usage("--seconds takes 0.1 to 86400, not '%s'", optarg);
			break;
		case 'w':
		case 'r':
			if (parse_double(optarg, c == 'w' ? 1 : 0,
					 c == 'w' ? KV_MAX_WRITERS : KV_MAX_READERS, &d) ||
			    d != (int)d)
				return bad_usage(c == 'w' ? "--writers takes 1 to 16, not '%s'" :
						 "--readers takes 0 to 16, not '%s'", optarg);
			*(c == 'w' ? &o->writers : &o->readers) = (int)d;
			break;
		case 'R':
			if (parse_double(optarg, 0, 1e7, &o->write_rate))
				return bad_usage("--write-rate takes MiB/s (0 = no limit), not '%s'", optarg);
			break;
		case 'W':
			if (parse_double(optarg, 0.05, 0.99, &o->watermark))
				return bad_usage("--watermark takes a fraction 0.05 to 0.99, not '%s'",
						 optarg);
			break;
		case 'L':
			if (parse_double(optarg, 0.01, 0.98, &o->low))
				return bad_usage("--low takes a fraction 0.01 to 0.98, not '%s'", optarg);
			break;
		case 'i':
			if (parse_double(optarg, 0.05, 3600, &o->interval))
				return bad_usage("--interval takes 0.05 to 3600 seconds, not '%s'", optarg);
			break;
		case 'z':
			if (parse_double(optarg, 0, 5, &o->zipf_s))
				return bad_usage("--zipf takes an exponent 0 to 5, not '%s'", optarg);
			break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case 'V': printf("kvdemo (l1arena) %d.%d\n", L1_VERSION_MAJOR, L1_VERSION_MINOR); exit(0);
		default: return bad_usage("%s", "unknown option");
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument '%s'", argv[optind]);
	if (o->low >= o->watermark)
		return bad_usage("--low must be below --watermark%s", "");
	return 0;
}

static const char *human(uint64_t b, char *buf, size_t len)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
	return buf;
}

static void on_signal(int sig)
{
	got_signal = sig;
}

/* Forks one worker; its exit status is the role's return value. */
static pid_t spawn(const struct kv_opts *o, struct kv_stats *s, char role, int idx)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(1);
	int rc = role == 'w' ? kv_writer(o, s, idx) : role == 'r' ? kv_reader(o, s, idx) :
		 kv_evictor(o, s);
	_exit(rc);
}

struct snap {
	uint64_t t, objs, bytes, rd, rd_bytes;
};

static void take(const struct kv_stats *s, uint64_t t, struct snap *p)
{
	p->t = t;
	p->objs = atomic_load(&s->objs_written);
	p->bytes = atomic_load(&s->bytes_written);
	p->rd = atomic_load(&s->rd_key) + atomic_load(&s->rd_view_mmap) +
		atomic_load(&s->rd_view_read) + atomic_load(&s->rd_zc);
	p->rd_bytes = atomic_load(&s->rd_bytes);
}

static void progress(struct l1_arena *a, const struct kv_stats *s, uint64_t t0,
		     struct snap *last)
{
	struct l1_usage u;
	struct snap now;
	char h1[32], h2[32], h3[32], h4[32], h5[32];
	l1_arena_usage(a, &u);
	take(s, kv_now_ns(), &now);
	double dt = (double)(now.t - last->t) / 1e9;
	if (dt <= 0)
		dt = 1e-9;
	char com[48] = "";
	if (u.committed_bytes < u.total_bytes)
		snprintf(com, sizeof com, ", %s committed", human(u.committed_bytes, h3, sizeof h3));
	printf("[%5.1fs] %5llu objects, %9s of %s (%4.1f%%%s) | write %4.0f/s %9s/s | "
	       "read %4.0f/s %9s/s: key %llu, view %llu, zero-copy %llu, missed %llu | "
	       "evicted %llu | waits %llu\n",
	       (double)(now.t - t0) / 1e9,
	       (unsigned long long)(u.objects[L1_STATE_ALLOCATED] + u.objects[L1_STATE_PUBLISHED]),
	       human(u.used_bytes, h1, sizeof h1), human(u.total_bytes, h2, sizeof h2),
	       100.0 * (double)u.used_bytes / (double)u.total_bytes, com,
	       (double)(now.objs - last->objs) / dt,
	       human((uint64_t)((double)(now.bytes - last->bytes) / dt), h4, sizeof h4),
	       (double)(now.rd - last->rd) / dt,
	       human((uint64_t)((double)(now.rd_bytes - last->rd_bytes) / dt), h5, sizeof h5),
	       (unsigned long long)atomic_load(&s->rd_key),
	       (unsigned long long)(atomic_load(&s->rd_view_mmap) + atomic_load(&s->rd_view_read)),
	       (unsigned long long)atomic_load(&s->rd_zc),
	       (unsigned long long)atomic_load(&s->rd_miss),
	       (unsigned long long)atomic_load(&s->ev_objs),
	       (unsigned long long)atomic_load(&s->alloc_waits));
	fflush(stdout);
	*last = now;
}

/* Waits for every worker, at most 30 s, then kills the rest.  Returns the
 * number that did not exit cleanly. */
static int reap(pid_t *kids, int n, struct kv_stats *s)
{
	int bad = 0, left = n;
	uint64_t deadline = kv_now_ns() + 30ull * 1000000000ull;
	while (left > 0) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p > 0) {
			for (int i = 0; i < n; i++)
				if (kids[i] == p) {
					kids[i] = 0;
					left--;
					if (!WIFEXITED(st) || WEXITSTATUS(st)) {
						bad++;
						if (!WIFEXITED(st))
							kv_error(s, "a worker (pid %d) died of signal %d",
								 (int)p, WTERMSIG(st));
					}
				}
			continue;
		}
		if (kv_now_ns() > deadline) {
			for (int i = 0; i < n; i++)
				if (kids[i] > 0) {
					kv_error(s, "a worker (pid %d) did not stop within 30 s",
						 (int)kids[i]);
					kill(kids[i], SIGKILL);
				}
			deadline = UINT64_MAX;
		}
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	return bad;
}

/* The upper bound (us) of the histogram bucket holding quantile q. */
static double hist_q(const struct kv_stats *s, double q)
{
	uint64_t n = 0, acc = 0;
	for (int b = 0; b < 32; b++)
		n += atomic_load(&s->alloc_hist[b]);
	for (int b = 0; b < 32 && n; b++) {
		acc += atomic_load(&s->alloc_hist[b]);
		if ((double)acc >= q * (double)n)
			return b ? (double)(1ull << b) : 1.0;
	}
	return 0;
}

static uint64_t ooms_at_start;         /* the pool's refused allocations before this run */

static void summary(struct l1_arena *a, const struct kv_opts *o, const struct kv_stats *s,
		    double secs, int problems, const char *report)
{
	char h1[32], h2[32], h3[32], h4[32];
	struct l1_usage u;
	uint64_t rd = atomic_load(&s->rd_key) + atomic_load(&s->rd_view_mmap) +
		      atomic_load(&s->rd_view_read) + atomic_load(&s->rd_zc);
	uint64_t calls = atomic_load(&s->alloc_calls);
	l1_arena_usage(a, &u);
	printf("\nkvdemo: %.1f s, %d writers, %d readers, evict at %.0f%% down to %.0f%%\n",
	       secs, o->writers, o->readers, 100 * o->watermark, 100 * o->low);
	char mean[32], p50[32], p99[32];
	/* the histogram has power-of-two buckets in µs: a quantile is a bound */
	printf("  written    %llu objects, %s (%s/s); %llu allocate calls, mean %s, "
	       "p50 under %s, p99 under %s; %llu waits for room\n",
	       (unsigned long long)atomic_load(&s->objs_written),
	       human(atomic_load(&s->bytes_written), h1, sizeof h1),
	       human((uint64_t)((double)atomic_load(&s->bytes_written) / secs), h2, sizeof h2),
	       (unsigned long long)calls,
	       l1t_duration(calls ? atomic_load(&s->alloc_ns) / calls : 0, mean, sizeof mean),
	       l1t_duration((uint64_t)(hist_q(s, 0.5) * 1e3), p50, sizeof p50),
	       l1t_duration((uint64_t)(hist_q(s, 0.99) * 1e3), p99, sizeof p99),
	       (unsigned long long)atomic_load(&s->alloc_waits));
	printf("  verified   %llu reads, %s: %llu by key, %llu view mmap, %llu view read, "
	       "%llu zero-copy by path; %llu misses (evicted before the read)%s\n",
	       (unsigned long long)rd, human(atomic_load(&s->rd_bytes), h3, sizeof h3),
	       (unsigned long long)atomic_load(&s->rd_key),
	       (unsigned long long)atomic_load(&s->rd_view_mmap),
	       (unsigned long long)atomic_load(&s->rd_view_read),
	       (unsigned long long)atomic_load(&s->rd_zc),
	       (unsigned long long)atomic_load(&s->rd_miss),
	       o->view ? "" : " (no view: reads by path skipped)");
	printf("  evicted    %llu objects, %s, in %llu passes (%llu of them for a writer that "
	       "found no room below the watermark)\n",
	       (unsigned long long)atomic_load(&s->ev_objs),
	       human(atomic_load(&s->ev_bytes), h4, sizeof h4),
	       (unsigned long long)atomic_load(&s->ev_passes),
	       (unsigned long long)atomic_load(&s->ev_pressure));
	printf("  pool now   %s used of %s, %llu published objects, %llu refused allocations "
	       "in this run (waited out; %llu since the pool was created), memcheck: %s\n",
	       human(u.used_bytes, h1, sizeof h1), human(u.total_bytes, h2, sizeof h2),
	       (unsigned long long)u.objects[L1_STATE_PUBLISHED],
	       (unsigned long long)(u.ooms - ooms_at_start), (unsigned long long)u.ooms,
	       problems == 0 ? "clean" : "PROBLEMS");
	if (problems)
		fputs(report, stdout);
}

int main(int argc, char **argv)
{
	struct kv_opts o = { .seconds = 20, .watermark = 0.8, .low = 0.7, .interval = 1,
			     .zipf_s = 1.5, .writers = 3, .readers = 2, .write_rate = 512 };
	struct l1_open_opts op;
	struct l1_arena *a;
	struct l1_usage u;
	pid_t kids[MAX_KIDS];
	int nkids = 0, r;
	static char report[65536];

	if ((r = parse(argc, argv, &o)))
		return r;
	o.run = kv_mix((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ kv_now_ns());
	l1_open_opts_init(&op);
	op.pin = L1_PIN_OFF;
	op.no_client = 1;
	if ((r = l1_arena_open(o.arena, &op, &a))) {
		fprintf(stderr, "kvdemo: cannot attach to the pool: %s\n", l1_last_error());
		return 1;
	}
	l1_arena_usage(a, &u);
	ooms_at_start = u.ooms;
	char h1[32], h2[32];
	if (u.grow_step_bytes < kv_max_object_bytes()) {
		fprintf(stderr, "kvdemo: the pool's grow step (%s) is smaller than the largest "
			"chunk (%s), and objects cannot cross a step: create the pool with "
			"--grow-step 64M or more\n", human(u.grow_step_bytes, h1, sizeof h1),
			human(kv_max_object_bytes(), h2, sizeof h2));
		l1_arena_close(a);
		return 1;
	}
	if (u.total_bytes < 4 * kv_max_object_bytes()) {
		fprintf(stderr, "kvdemo: the pool (%s) is too small for this workload: give it "
			"at least 128M\n", human(u.total_bytes, h1, sizeof h1));
		l1_arena_close(a);
		return 1;
	}
	printf("kvdemo: pool %s (%s, %s, %s), %d writers, %d readers, 1 evictor, %.0f s\n",
	       l1_arena_path(a), human(u.total_bytes, h1, sizeof h1), u.backing,
	       u.lazy ? "lazy" : "eager", o.writers, o.readers, o.seconds);
	printf("kvdemo: view %s\n", o.view ? o.view : "none (reads by key only)");
	for (unsigned i = 0; i < kv_nmodels; i++) {
		const struct kv_model *m = &kv_models[i];
		uint64_t chunk = 2ull * m->layers * KV_CHUNK_TOKENS * m->kv_heads * m->head_dim * 2;
		printf("kvdemo: %3u%% %-36s %s per 256-token chunk, %s\n", m->weight, m->name,
		       human(chunk, h1, sizeof h1), m->layerwise ?
		       "one [2,T,H*D] fp16 object per layer" : "one [2,L,T,H*D] fp16 object");
	}
	fflush(stdout);

	struct kv_stats *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED) {
		perror("kvdemo: mmap");
		l1_arena_close(a);
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	kids[nkids++] = spawn(&o, s, 'e', 0);
	for (int i = 0; i < o.writers; i++)
		kids[nkids++] = spawn(&o, s, 'w', i);
	for (int i = 0; i < o.readers; i++)
		kids[nkids++] = spawn(&o, s, 'r', i);
	for (int i = 0; i < nkids; i++)
		if (kids[i] < 0) {
			kv_error(s, "cannot fork a worker: %s", strerror(errno));
			kids[i] = 0;
		}

	uint64_t t0 = kv_now_ns(), next = t0;
	struct snap last;
	take(s, t0, &last);
	while (!atomic_load(&s->stop) && !got_signal) {
		uint64_t now = kv_now_ns();
		if (now - t0 >= (uint64_t)(o.seconds * 1e9))
			break;
		next += (uint64_t)(o.interval * 1e9);
		while ((now = kv_now_ns()) < next && now - t0 < (uint64_t)(o.seconds * 1e9) &&
		       !atomic_load(&s->stop) && !got_signal) {
			struct timespec ts = { 0, 20000000 };
			nanosleep(&ts, NULL);
			int st;
			pid_t p = waitpid(-1, &st, WNOHANG);
			if (p > 0) {
				for (int i = 0; i < nkids; i++)
					if (kids[i] == p)
						kids[i] = 0;
				if (!atomic_load(&s->errors))
					kv_error(s, "a worker (pid %d) exited early (%s %d)", (int)p,
						 WIFEXITED(st) ? "status" : "signal",
						 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			}
		}
		progress(a, s, t0, &last);
	}
	double secs = (double)(kv_now_ns() - t0) / 1e9;
	if (got_signal)
		printf("kvdemo: %s: stopping the workers\n", strsignal(got_signal));
	atomic_store(&s->stop, 1);
	int compact = 0;
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			kids[compact++] = kids[i];
	int bad = reap(kids, compact, s);

	int problems = l1_arena_memcheck(a, 0, report, sizeof report);
	if (problems < 0) {
		snprintf(report, sizeof report, "memcheck could not run: %s\n", l1_last_error());
		problems = 1;
	}
	summary(a, &o, s, secs, problems, report);
	l1_arena_close(a);
	uint64_t errors = atomic_load(&s->errors);
	if (errors || bad || problems) {
		fprintf(stderr, "kvdemo: FAILED: %s%s\n",
			s->first_error[0] ? s->first_error : "a worker failed",
			errors > 1 ? " (and more errors after it)" : "");
		return 1;
	}
	if (atomic_load(&s->ev_objs))
		printf("kvdemo: OK: every read matched what its writer wrote; the pool ran full "
		       "and was evicted at the watermark, and no writer failed to allocate\n");
	else
		printf("kvdemo: OK: every read matched what its writer wrote; the pool did not "
		       "reach the watermark in this run (run longer to see eviction)\n");
	return 0;
}
