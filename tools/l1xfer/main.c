/*
 * main.c - the l1xfer command: `serve` a pool to peers, `get` keys from a
 * peer's pool into a local one, `put` keys the other way.  Parses options,
 * opens the pool, prints a progress line on long transfers and a summary;
 * the work is in the library (l1xfer.h).  Exit status: 0 done, 1 failed
 * (with a sentence), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l1xfer.h"

static const char usage_text[] =
	"usage: l1xfer serve --arena POOL --listen ADDR:PORT\n"
	"       l1xfer get --arena POOL --from HOST:PORT [--chunk N] [--quiet] (KEY... | --keys FILE | --prefix P)\n"
	"       l1xfer put --arena POOL --to HOST:PORT [--chunk N] [--quiet] (KEY... | --keys FILE | --prefix P)\n"
	"\n"
	"serve   attaches POOL, registers it with UCX once and answers peers' lookups\n"
	"        (PORT 0: any free port; the line 'listening on ADDR:PORT' says which)\n"
	"get     reads the keys the peer has published straight into POOL and publishes\n"
	"        them there under the same keys; keys POOL has already are skipped\n"
	"put     pushes keys published in POOL into the peer's pool\n"
	"--keys FILE: one key per line ('-': stdin); --prefix P: every key that starts with P\n"
	"(at the peer for get, here for put).  The transport is UCX's choice: UCX_TLS,\n"
	"UCX_NET_DEVICES select it.  POOL defaults to $L1ARENA_PATH.\n"
	"Exit codes: 0 done, 1 failed (with a sentence), 2 usage error.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int usage(const char *fmt, const char *arg)
{
	if (fmt) {
		fprintf(stderr, "l1xfer: ");
		fprintf(stderr, fmt, arg);
		fprintf(stderr, "\n");
	}
	fputs(usage_text, stderr);
	return 2;
}

static struct l1_arena *open_pool(const char *path)
{
	struct l1_arena *a;
	int r;
	if (!path)
		path = getenv("L1ARENA_PATH") ? getenv("L1ARENA_PATH") : L1_DEFAULT_PATH;
	r = l1_arena_open(path, NULL, &a);
	if (r) {
		fprintf(stderr, "l1xfer: cannot attach the pool %s: %s\n", path, l1_last_error());
		return NULL;
	}
	return a;
}

static int serve(const char *pool, const char *listen)
{
	struct l1_xfer_server *s;
	struct l1_arena *a = open_pool(pool);
	struct sigaction sa = { .sa_handler = on_signal };
	int r;
	if (!a)
		return 1;
	r = l1_xfer_server_start(a, listen, &s);
	if (r) {
		fprintf(stderr, "l1xfer serve: %s\n", l1_xfer_last_error());
		l1_arena_close(a);
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	char host[256];
	snprintf(host, sizeof host, "%s", listen);
	*strrchr(host, ':') = 0;
	printf("l1xfer serve: %s listening on %s:%d\n", l1_arena_path(a), host,
	       l1_xfer_server_port(s));
	fflush(stdout);
	r = l1_xfer_server_run(s, &stop);
	l1_xfer_server_close(s);
	l1_arena_close(a);
	return r ? 1 : 0;
}

/* Keys from a file, one per line (empty lines skipped). */
static int read_keys(const char *file, char ***out)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	char *line = NULL, **keys = NULL;
	size_t cap = 0, n = 0, lcap = 0;
	ssize_t len;
	if (!f) {
		fprintf(stderr, "l1xfer: cannot read %s: %s\n", file, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &lcap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (!len)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			keys = realloc(keys, cap * sizeof *keys);
		}
		keys[n++] = strdup(line);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	*out = keys;
	return (int)n;
}

/* Published keys of the local pool that start with prefix (for put). */
static int local_prefix(struct l1_arena *a, const char *prefix, char ***out)
{
	struct l1_obj_info info[64];
	uint64_t cursor = 0;
	size_t cap = 0, n = 0, plen = strlen(prefix);
	char **keys = NULL;
	int got;
	while ((got = l1_obj_list(a, &cursor, info, 64)) > 0)
		for (int i = 0; i < got; i++) {
			if (info[i].state != L1_STATE_PUBLISHED || !info[i].key[0] ||
			    strncmp(info[i].key, prefix, plen))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				keys = realloc(keys, cap * sizeof *keys);
			}
			keys[n++] = strdup(info[i].key);
		}
	*out = keys;
	return (int)n;
}

static void human(double b, char *buf, size_t len)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void progress(const struct l1_xfer_stats *s, void *arg)
{
	char b[32];
	double sec = s->ns / 1e9;
	human((double)s->bytes, b, sizeof b);
	fprintf(stderr, "l1xfer %s: %llu of %llu objects, %s, %.2f GB/s\n", (const char *)arg,
		(unsigned long long)(s->moved + s->present + s->missing + s->failed),
		(unsigned long long)s->requested, b, sec > 0 ? s->bytes / sec / 1e9 : 0.0);
}

static void summary(const char *cmd, const struct l1_xfer_stats *s, const char *peer,
		    const char *transport)
{
	char b[32];
	double sec = s->ns / 1e9;
	human((double)s->bytes, b, sizeof b);
	printf("l1xfer %s: %llu keys: %llu moved (%s), %llu already there, %llu missing, "
	       "%llu failed in %.3f s (%.2f GB/s, %.0f objects/s); %s %s over %s\n",
	       cmd, (unsigned long long)s->requested, (unsigned long long)s->moved, b,
	       (unsigned long long)s->present, (unsigned long long)s->missing,
	       (unsigned long long)s->failed, sec, sec > 0 ? s->bytes / sec / 1e9 : 0.0,
	       sec > 0 ? s->moved / sec : 0.0, strcmp(cmd, "get") ? "to" : "from", peer, transport);
	fflush(stdout);
}

static int transfer(const char *cmd, const char *pool, const char *peer, uint32_t chunk,
		    int quiet, char **keys, int nkeys, const char *keyfile, const char *prefix)
{
	struct l1_arena *a = open_pool(pool);
	struct l1_xfer_stats st = { 0 };
	struct l1_xfer *x = NULL;
	char **owned = NULL;
	int r, is_get = !strcmp(cmd, "get"), n = nkeys;
	if (!a)
		return 1;
	if (keyfile && (n = read_keys(keyfile, &owned)) < 0) {
		r = 1;
		goto out;
	}
	if (prefix && !is_get)
		n = local_prefix(a, prefix, &owned);
	r = l1_xfer_connect(a, peer, &x);
	if (!r && chunk)
		r = l1_xfer_set_chunk(x, chunk);
	if (r) {
		fprintf(stderr, "l1xfer %s: %s\n", cmd, l1_xfer_last_error());
		r = 1;
		goto out;
	}
	if (!quiet)
		l1_xfer_set_progress(x, progress, (void *)cmd);
	const char *const *k = (const char *const *)(owned ? owned : keys);
	if (is_get && prefix)
		r = l1_xfer_get_prefix(x, prefix, &st);
	else if (is_get)
		r = l1_xfer_get(x, k, (uint32_t)n, &st);
	else
		r = l1_xfer_put(x, k, (uint32_t)n, &st);
	summary(cmd, &st, peer, l1_xfer_transport(x));
	if (r)
		fprintf(stderr, "l1xfer %s: %s\n", cmd, l1_xfer_last_error());
	r = r ? 1 : 0;
out:
	l1_xfer_close(x);
	for (int i = 0; owned && i < n; i++)
		free(owned[i]);
	free(owned);
	l1_arena_close(a);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "arena", required_argument, NULL, 'a' },
		{ "listen", required_argument, NULL, 'l' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "keys", required_argument, NULL, 'k' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd, *pool = NULL, *listen = NULL, *from = NULL, *to = NULL;
	const char *keyfile = NULL, *prefix = NULL;
	unsigned long chunk = 0;
	int quiet = 0, c;
	char *end;

	if (argc < 2)
		return usage(NULL, NULL);
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(cmd, "serve") && strcmp(cmd, "get") && strcmp(cmd, "put"))
		return usage("unknown command '%s'", cmd);
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': pool = optarg; break;
		case 'l': listen = optarg; break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'p': prefix = optarg; break;
		case 'q': quiet = 1; break;
		case 'c':
			chunk = strtoul(optarg, &end, 10);
			if (*end || chunk < 1 || chunk > 4096)
				return usage("--chunk takes 1 to 4096, not '%s'", optarg);
			break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: return usage(NULL, NULL);
		}
	}
	if (!strcmp(cmd, "serve")) {
		if (!listen || from || to || keyfile || prefix || optind < argc)
			return usage("serve takes --arena and --listen ADDR:PORT only%s", "");
		return serve(pool, listen);
	}
	const char *peer = !strcmp(cmd, "get") ? from : to;
	if (!peer || (from && to) || listen)
		return usage("%s needs the peer: --from HOST:PORT (get) or --to HOST:PORT (put)", cmd);
	if ((optind < argc) + !!keyfile + !!prefix != 1)
		return usage("%s takes the keys in one way: KEY..., --keys FILE or --prefix P", cmd);
	return transfer(cmd, pool, peer, (uint32_t)chunk, quiet, argv + optind, argc - optind,
			keyfile, prefix);
}
