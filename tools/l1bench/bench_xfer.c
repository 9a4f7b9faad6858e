/*
 * bench_xfer.c - the xfer scenario: pool to pool over UCX with the real
 * tools, beside ucx_perftest's ucp_get on the same transport in the same
 * run.  A source pool is filled with N objects of 16 KiB, 1 MiB and 32 MiB
 * (a byte pattern per object) and served by `l1xfer serve` on 127.0.0.1; a
 * separate `l1xfer get --prefix` process fetches them into a destination
 * pool, three times (the destination emptied and zeroed between), and the
 * figure is the best of the three as timed inside the get call (lookup,
 * allocation, reads, publish; not process start or connection).  The
 * transport the connection used (from get's summary line) is what
 * ucx_perftest is given (UCX_TLS, UCX_NET_DEVICES), for the same sizes and
 * as many gets in flight, best of three as well.  No
 * UCX linked here: the scenario runs the l1xfer binary next to l1bench.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

struct xfer_size {
	const char *name;
	uint64_t bytes;
	uint32_t count, quick_count;
};

static const struct xfer_size sizes[] = {
	{ "16 KiB", 16 << 10, 1000, 1000 },
	{ "1 MiB", 1 << 20, 256, 64 },
	{ "32 MiB", 32 << 20, 16, 4 },
};

/* path of a program next to this one */
static int sibling(const char *name, char *buf, size_t len)
{
	char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return -1;
	self[n] = 0;
	*strrchr(self, '/') = 0;
	snprintf(buf, len, "%s/%s", self, name);
	return access(buf, X_OK);
}

static int in_path(const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* Starts `l1xfer serve` on 127.0.0.1, any port; returns its pid and port. */
static pid_t start_server(const char *xfer, const char *pool, int *port)
{
	int fd[2];
	char line[512] = "";
	pid_t pid;
	if (pipe(fd))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execl(xfer, xfer, "serve", "--arena", pool, "--listen", "127.0.0.1:0", (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	FILE *f = fdopen(fd[0], "r");
	if (!f || !fgets(line, sizeof line, f) || !strstr(line, "listening on")) {
		if (f)
			fclose(f);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	fclose(f);
	*port = atoi(strrchr(line, ':') + 1);
	return pid;
}

static void stop_child(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static double children_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Runs a command, keeps the last line that contains want; *cpu: the CPU
 * seconds it used (user + system).  The machine may be shared: CPU time per
 * byte says what wall time under load cannot. */
static int run_capture(const char *cmd, const char *want, char *out, size_t len, double *cpu)
{
	char line[1024];
	double c0 = children_cpu();
	FILE *p = popen(cmd, "r");
	int rc;
	if (!p)
		return -1;
	out[0] = 0;
	while (fgets(line, sizeof line, p))
		if (strstr(line, want))
			snprintf(out, len, "%s", line);
	rc = pclose(p);
	*cpu = children_cpu() - c0;
	return rc == 0 && out[0] ? 0 : -1;
}

static int fill_source(struct l1_arena *a, const struct xfer_size *s, uint32_t count, int tag)
{
	struct l1_obj o;
	char key[64];
	for (uint32_t i = 0; i < count; i++) {
		if (l1_alloc_bytes(a, s->bytes, 1, &o))
			return -1;
		memset(o.ptr, (i + tag) & 0xff, s->bytes);
		snprintf(key, sizeof key, "x%d/%05u", tag, i);
		if (l1_publish(a, o.id, key))
			return -1;
	}
	return 0;
}

/* Frees everything in the destination and waits for the zeroing. */
static void empty_pool(struct l1_arena *a)
{
	struct l1_obj_info info[64];
	uint64_t cursor = 0, ids[64];
	int n;
	while ((n = l1_obj_list(a, &cursor, info, 64)) > 0) {
		for (int i = 0; i < n; i++)
			ids[i] = info[i].obj.id;
		l1_free_ids(a, ids, (uint32_t)n);
	}
	l1_arena_flush(a, 60000);
}

/* Every fetched object has its pattern at both ends. */
static int verify(struct l1_arena *a, const struct xfer_size *s, uint32_t count, int tag)
{
	struct l1_obj o;
	char key[64];
	for (uint32_t i = 0; i < count; i++) {
		snprintf(key, sizeof key, "x%d/%05u", tag, i);
		if (l1_lookup(a, key, &o))
			return -1;
		const unsigned char *p = o.ptr, want = (unsigned char)((i + tag) & 0xff);
		if (p[0] != want || p[s->bytes - 1] != want)
			return -1;
	}
	return 0;
}

/* "rma: tcp/lo.0, tcp/eth0.0; am: ..." -> tls "tcp", devices "lo,eth0" */
static void transport_of(const char *summary, char *tls, char *devs, size_t len)
{
	const char *p = strstr(summary, "over rma: ");
	tls[0] = devs[0] = 0;
	if (!p)
		return;
	p += 10;
	while (*p && *p != ';' && *p != '\n') {
		char tl[64] = "", dev[64] = "";
		if (sscanf(p, "%63[^/]/%63[^.,;\n]", tl, dev) >= 1) {
			if (!strstr(tls, tl))
				snprintf(tls + strlen(tls), len - strlen(tls), "%s%s", *tls ? "," : "", tl);
			if (*dev && !strstr(devs, dev))
				snprintf(devs + strlen(devs), len - strlen(devs), "%s%s",
					 *devs ? "," : "", dev);
		}
		p += strcspn(p, ",;\n");
		while (*p == ',' || *p == ' ')
			p++;
	}
}

/* ucx_perftest ucp_get, server and client on 127.0.0.1, with as many gets
 * outstanding as l1xfer had (its default -O 0 waits for each: a latency
 * figure, not a bandwidth one): MB/s (MiB/s) and messages/s, overall. */
static int perftest(const char *tls, const char *devs, uint64_t size, uint32_t iters,
		    uint32_t outstanding, double *mbs, double *mr, double *cpu_per_gb)
{
	char cmd[1024], line[1024], env[300], port_s[16];
	int port = 20000 + (int)(getpid() % 20000), r;
	uint32_t warm = iters / 8 + 1;
	pid_t srv;
	snprintf(env, sizeof env, "UCX_TLS=%s UCX_NET_DEVICES=%s", tls, *devs ? devs : "all");
	snprintf(port_s, sizeof port_s, "%d", port);
	srv = fork();                   /* the responder, apart: its CPU is not counted */
	if (srv == 0) {
		setenv("UCX_TLS", tls, 1);
		setenv("UCX_NET_DEVICES", *devs ? devs : "all", 1);
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("ucx_perftest", "ucx_perftest", "-p", port_s, (char *)NULL);
		_exit(127);
	}
	if (srv < 0)
		return -1;
	usleep(500000);
	snprintf(cmd, sizeof cmd, "%s ucx_perftest 127.0.0.1 -p %d -t ucp_get -s %llu -n %u -w %u "
		 "-O %u -f -v 2>&1", env, port, (unsigned long long)size, iters, warm, outstanding);
	double cpu;
	r = run_capture(cmd, ",", line, sizeof line, &cpu);
	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	if (r)
		return -1;
	*cpu_per_gb = cpu / ((double)(iters + warm) * size / 1e9);
	/* iterations,p50_lat,avg_lat,overall_lat,avg_bw,overall_bw,avg_mr,overall_mr */
	double v[8];
	if (sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3], &v[4],
		   &v[5], &v[6], &v[7]) != 8)
		return -1;
	*mbs = v[5];
	*mr = v[7];
	return 0;
}

/* Best of 3 for one size, ours and ucx_perftest's taking turns (the machine
 * may be shared: turns see the same load). */
static int one_size(const struct bench_ctx *c, const char *xfer, struct l1_arena *dst,
		    const char *dst_path, int port, unsigned k)
{
	const struct xfer_size *s = &sizes[k];
	uint32_t n = c->quick ? s->quick_count : s->count;
	uint32_t depth = n < 1024 ? n : 1024;  /* l1xfer: up to 4 chunks of 256 reads in flight */
	double best = 1e30, cpu_best = 1e30, ptbw = 0, ptmr = 0, ptcpu = 0;
	char cmd[2048], line[1024], tls[128] = "", devs[128] = "", metric[64], *in;
	int pt_ok = 1;

	for (int rep = 0; rep < 3; rep++) {
		double sec, cpu, bw, mr, pc;
		empty_pool(dst);
		snprintf(cmd, sizeof cmd, "%s get --quiet --arena %s --from 127.0.0.1:%d --prefix x%u/ 2>&1",
			 xfer, dst_path, port, k);
		if (run_capture(cmd, "keys:", line, sizeof line, &cpu) || !(in = strstr(line, " in ")) ||
		    sscanf(in, " in %lf s", &sec) != 1 || verify(dst, s, n, (int)k)) {
			bench_note(c, "xfer", "the get of %u x %s failed: %s", n, s->name, line);
			return 1;
		}
		best = sec < best ? sec : best;
		cpu_best = cpu < cpu_best ? cpu : cpu_best;
		transport_of(line, tls, devs, sizeof tls);
		/* the same bytes as one get, as many reads in flight */
		if (pt_ok && !perftest(tls, devs, s->bytes, n, depth, &bw, &mr, &pc)) {
			if (bw > ptbw) {
				ptbw = bw;
				ptmr = mr;
			}
			ptcpu = !ptcpu || pc < ptcpu ? pc : ptcpu;
		} else if (pt_ok) {
			pt_ok = 0;
			bench_note(c, "xfer", "ucx_perftest (ucp_get, UCX_TLS=%s) did not run%s", tls,
				   in_path("ucx_perftest") ? "" : ": install ucx-utils");
		}
	}
	double gbs = (double)n * s->bytes / best / 1e9;
	double ptgbs = ptbw * 1048576.0 / 1e9;   /* perftest's MB/s are MiB/s */
	int bw_goal = s->bytes >= (1 << 20);
	snprintf(metric, sizeof metric, "pool to pool, %u x %s", n, s->name);
	bench_report(c, "xfer", metric, gbs, "GB/s", ptbw ? "ucx_perftest ucp_get" : NULL, ptgbs,
		     bw_goal ? ">= 0.8x ucx_perftest" : NULL, bw_goal && ptbw ? gbs >= 0.8 * ptgbs : -1);
	bench_report(c, "xfer", metric, n / best, "obj/s", ptbw ? "ucx_perftest msg/s" : NULL, ptmr,
		     NULL, -1);
	/* the whole client process, UCX set-up included, per GB moved */
	bench_report(c, "xfer", metric, cpu_best / ((double)n * s->bytes / 1e9), "cpu-s/GB",
		     ptcpu ? "ucx_perftest client" : NULL, ptcpu, NULL, -1);
	if (s->bytes == 16 << 10 && n == 1000)
		bench_report(c, "xfer", "batch of 1000 keys of 16 KiB", best * 1e3, "ms", NULL, 0,
			     "< 50 ms", best < 0.05);
	bench_note(c, "xfer", "%s: transport %s (devices %s); ucx_perftest on it, -n %u -O %u "
		   "(the same bytes, as many gets in flight), best of 3 taking turns with ours",
		   s->name, tls, devs, n, depth);
	return 0;
}

int bench_xfer(const struct bench_ctx *c)
{
	char xfer[600], src_path[512], dst_path[512];
	uint64_t need = 0;
	int port, rc = 0;
	pid_t srv;

	if (sibling("l1xfer", xfer, sizeof xfer)) {
		bench_note(c, "xfer", "l1xfer is not built next to l1bench (make bins with libucx-dev)");
		return 0;
	}
	if (!getenv("UCX_NET_DEVICES"))
		setenv("UCX_NET_DEVICES", "lo", 1);   /* loopback only: no other interface */
	for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		uint32_t n = c->quick ? sizes[k].quick_count : sizes[k].count;
		need += (uint64_t)n * sizes[k].bytes;
	}
	struct l1_arena *src = bench_create(c, "xfer-src", need + (need >> 4) + (64 << 20), 0, 0);
	struct l1_arena *dst = bench_create(c, "xfer-dst", (32ull << 20) * 16 + (64 << 20), 0, 1);
	if (!src || !dst) {
		rc = 1;
		goto out;
	}
	snprintf(src_path, sizeof src_path, "%s", l1_arena_path(src));
	snprintf(dst_path, sizeof dst_path, "%s", l1_arena_path(dst));
	for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
		if (fill_source(src, &sizes[k], c->quick ? sizes[k].quick_count : sizes[k].count,
				(int)k)) {
			bench_note(c, "xfer", "cannot fill the source pool: %s", l1_last_error());
			rc = 1;
			goto out;
		}
	srv = start_server(xfer, src_path, &port);
	if (srv < 0) {
		bench_note(c, "xfer", "l1xfer serve did not start");
		rc = 1;
		goto out;
	}
	bench_note(c, "xfer", "l1xfer serve on 127.0.0.1:%d, UCX_TLS=%s, UCX_NET_DEVICES=%s; "
		   "best of 3 gets per size, timed inside the get", port,
		   getenv("UCX_TLS") ? getenv("UCX_TLS") : "(UCX's choice)", getenv("UCX_NET_DEVICES"));
	for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0] && !rc; k++)
		rc = one_size(c, xfer, dst, dst_path, port, k);
	stop_child(srv);
out:
	bench_destroy(src);
	bench_destroy(dst);
	return rc;
}
