/*
 * cmd_pool.c - l1ctl's pool commands: setup, create, info, memcheck, gc,
 * destroy, and the helpers every command uses to open the pool and to say
 * what went wrong in a sentence.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "l1ctl.h"

int ctl_fail(const char *what, int err)
{
	const char *msg = l1_last_error();
	fprintf(stderr, "l1ctl: %s: %s\n", what, msg && *msg ? msg : l1_strerror(err));
	return EXIT_FAILED;
}

int ctl_fail_attach(const char *what, const char *path, int err)
{
	const char *p = path ? path : "";
	const char *sp = path ? " " : "";
	ctl_fail(what, err);
	switch (err) {
	case -EACCES:
	case -EPERM:
		fprintf(stderr, "l1ctl: run as the pool's owner or as root; a pool created with "
			"--mode 0666 lets every user attach.\n");
		break;
	case -EPROTO:
		fprintf(stderr, "l1ctl: this l1ctl reads pool format %d.x only: use the tools built "
			"with the library that made the pool, or remove it with `l1ctl destroy "
			"--force%s%s%s` and create it again.\n", L1_VERSION_MAJOR,
			path ? " --path" : "", sp, p);
		break;
	case -EBADMSG:
		fprintf(stderr, "l1ctl: the file is damaged or not a pool: remove it with `l1ctl "
			"destroy --force%s%s%s` and create it again.\n", path ? " --path" : "", sp, p);
		break;
	}
	return EXIT_FAILED;
}

struct l1_arena *ctl_open(const struct ctl *c, int readonly)
{
	struct l1_open_opts o;
	struct l1_arena *a;
	l1_open_opts_init(&o);
	o.pin = L1_PIN_OFF;
	o.no_client = 1;
	o.readonly = readonly;
	int r = l1_arena_open(c->path, &o, &a);
	if (r) {
		ctl_fail_attach("cannot attach to the pool", c->path, r);
		return NULL;
	}
	return a;
}

int ctl_parse_id(const char *s, uint64_t *id)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)s[0]))     /* strtoull takes "-1" and " 1" */
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0)
		return -EINVAL;
	*id = v;
	return 0;
}

void ctl_human(uint64_t b, char *buf, unsigned len)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

int cmd_setup(struct ctl *c)
{
	char msg[512];
	uint64_t pages = c->hugepages ? c->hugepages : 512;
	uint64_t ps = c->hugepage_size ? c->hugepage_size : L1_HUGEPAGE_2M;
	uint64_t mem = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	if (ps != L1_HUGEPAGE_2M && ps != L1_HUGEPAGE_1G)
		return ctl_usage("--page-size takes 2M or 1G");
	if (pages > mem / ps) {
		char h[32];
		ctl_human(mem, h, sizeof h);
		return ctl_usage("--hugepages %llu of %llu MiB is more than this machine's memory "
				 "(%s): ask for fewer", (unsigned long long)pages,
				 (unsigned long long)(ps >> 20), h);
	}
	int r = l1_setup_hugepages(c->hugepage_size, pages, c->mount, msg, sizeof msg);
	if (r) {
		ctl_fail("setup", r);
		if (geteuid() != 0 && (r == -EACCES || r == -EPERM))
			fprintf(stderr, "l1ctl: reserving huge pages and mounting hugetlbfs need "
				"root: run `sudo l1ctl setup --hugepages %llu`.\n",
				(unsigned long long)pages);
		return EXIT_FAILED;
	}
	printf("%s\n", msg);
	return 0;
}

int cmd_create(struct ctl *c)
{
	struct l1_config cfg;
	struct l1_arena *a;
	l1_config_init(&cfg);
	if (!c->size)
		return ctl_usage("create needs --size (for example --size 8G)");
	cfg.path = c->path;
	cfg.size_bytes = c->size;
	cfg.lazy = c->lazy;
	cfg.init_size_bytes = c->lazy ? c->init_size : 0;
	cfg.grow_step_bytes = c->grow_step;
	cfg.align_bytes = c->align;
	cfg.max_objects = c->max_objects;
	cfg.hugepage_size = c->hugepage_size;
	cfg.allow_shm = c->allow_shm;
	cfg.force = c->force;
	cfg.zero_on_free = c->zero_on_free;
	cfg.pin = L1_PIN_OFF;
	if (c->mode_str) {
		char *end;
		unsigned long m = strtoul(c->mode_str, &end, 8);
		if (*end || m > 0777)
			return ctl_usage("--mode takes an octal file mode such as 0600 or 0666");
		cfg.mode = (uint32_t)m;
	}
	int r = l1_arena_create(&cfg, &a);
	if (r) {
		ctl_fail("cannot create the pool", r);
		if (r == -EEXIST)
			fprintf(stderr, "l1ctl: add --force to replace it (its objects are lost).\n");
		if (r == -EBUSY)
			fprintf(stderr, "l1ctl: --force --force replaces it while they are "
				"attached.\n");
		return EXIT_FAILED;
	}
	struct l1_usage u;
	char tot[32], com[32];
	l1_arena_usage(a, &u);
	ctl_human(u.total_bytes, tot, sizeof tot);
	ctl_human(u.committed_bytes, com, sizeof com);
	printf("created %s: %s %s pool on %s (%s committed), %llu objects max\n",
	       l1_arena_path(a), tot, u.lazy ? "lazy" : "eager", u.backing, com,
	       (unsigned long long)u.max_objects);
	if (!strcmp(u.backing, "shm"))
		printf("note: no huge pages were used (shm fallback); run `l1ctl setup` as "
		       "root for hugetlbfs\n");
	l1_arena_close(a);
	return 0;
}

static void print_info_json(struct l1_arena *a, const struct l1_usage *u)
{
	printf("{\"path\":\"%s\",\"used_bytes\":%llu,\"total_bytes\":%llu,"
	       "\"committed_bytes\":%llu,\"dirty_bytes\":%llu,\"free_bytes\":%llu,"
	       "\"largest_free_bytes\":%llu,\"objects_allocated\":%llu,"
	       "\"objects_published\":%llu,\"objects_dirty\":%llu,\"objects_doomed\":%llu,"
	       "\"max_objects\":%llu,\"holds\":%llu,\"clients\":%llu,\"allocs\":%llu,"
	       "\"frees\":%llu,\"ooms\":%llu,\"repairs\":%llu,\"zeroed_bytes\":%llu,"
	       "\"backing\":\"%s\",\"hugepage_size\":%llu,\"lazy\":%d,\"zero_on_free\":%d,"
	       "\"grow_failed\":%d,\"metadata_bytes\":%llu}\n",
	       l1_arena_path(a), (unsigned long long)u->used_bytes,
	       (unsigned long long)u->total_bytes, (unsigned long long)u->committed_bytes,
	       (unsigned long long)u->dirty_bytes, (unsigned long long)u->free_bytes,
	       (unsigned long long)u->largest_free_bytes,
	       (unsigned long long)u->objects[1], (unsigned long long)u->objects[2],
	       (unsigned long long)u->objects[3], (unsigned long long)u->objects[4],
	       (unsigned long long)u->max_objects, (unsigned long long)u->holds,
	       (unsigned long long)u->clients, (unsigned long long)u->allocs,
	       (unsigned long long)u->frees, (unsigned long long)u->ooms,
	       (unsigned long long)u->repairs, (unsigned long long)u->zeroed_bytes,
	       u->backing, (unsigned long long)u->hugepage_size, u->lazy, u->zero_on_free,
	       u->grow_failed, (unsigned long long)u->metadata_bytes);
}

int cmd_info(struct ctl *c)
{
	struct l1_arena *a = ctl_open(c, 0);
	struct l1_usage u;
	if (!a)
		return EXIT_FAILED;
	l1_arena_usage(a, &u);
	if (c->json) {
		print_info_json(a, &u);
		l1_arena_close(a);
		return 0;
	}
	char used[32], tot[32], com[32], dirty[32], big[32], meta[32], hp[32], zb[32];
	ctl_human(u.used_bytes, used, sizeof used);
	ctl_human(u.total_bytes, tot, sizeof tot);
	ctl_human(u.committed_bytes, com, sizeof com);
	ctl_human(u.dirty_bytes, dirty, sizeof dirty);
	ctl_human(u.largest_free_bytes, big, sizeof big);
	ctl_human(u.metadata_bytes, meta, sizeof meta);
	ctl_human(u.hugepage_size, hp, sizeof hp);
	ctl_human(u.zeroed_bytes, zb, sizeof zb);
	double pct = u.total_bytes ? 100.0 * (double)u.used_bytes / (double)u.total_bytes : 0;
	printf("pool        %s\n", l1_arena_path(a));
	printf("backing     %s, page %s, %s, grow step %llu MiB\n", u.backing, hp,
	       u.lazy ? "lazy" : "eager", (unsigned long long)(u.grow_step_bytes >> 20));
	printf("used        %s of %s (%.1f%%), committed %s\n", used, tot, pct, com);
	printf("dirty       %s (zeroing %s; %s zeroed so far)\n", dirty,
	       u.zero_on_free ? "on" : "off", zb);
	printf("largest     %s free in one run\n", big);
	printf("objects     %llu allocated, %llu published, %llu dirty, %llu doomed, "
	       "%llu free slots of %llu\n",
	       (unsigned long long)u.objects[1], (unsigned long long)u.objects[2],
	       (unsigned long long)u.objects[3], (unsigned long long)u.objects[4],
	       (unsigned long long)u.objects[0], (unsigned long long)u.max_objects);
	printf("holds       %llu\n", (unsigned long long)u.holds);
	printf("activity    %llu allocs, %llu frees, %llu out-of-memory, %llu lock repairs\n",
	       (unsigned long long)u.allocs, (unsigned long long)u.frees,
	       (unsigned long long)u.ooms, (unsigned long long)u.repairs);
	printf("growth      %s%s\n", u.grow_failed ? "STOPPED: " : "", u.grow_reason);
	struct l1_health hl;
	l1_arena_health(a, &hl);
	printf("given back  %s\n", hl.grow_text);
	printf("lock        %s\n", hl.lock_text);
	printf("metadata    %s (%.3f%% of the pool)\n", meta,
	       100.0 * (double)u.metadata_bytes / (double)u.total_bytes);
	struct l1_client_info ci[64];
	int n = l1_arena_clients(a, ci, 64);
	printf("clients     %d\n", n);
	for (int i = 0; i < n; i++)
		printf("  pid %-8d %-5s pin: %s%s%s; zeroing: %s; holds %u\n", ci[i].pid,
		       ci[i].alive ? "alive" : "DEAD",
		       ci[i].pin_status == L1_PIN_PINNED ? "pinned" :
		       ci[i].pin_status == L1_PIN_UNPINNED ? "unpinned" :
		       ci[i].pin_status == L1_PIN_DEFERRED ? "deferred" : "off",
		       ci[i].pin_reason[0] ? " - " : "", ci[i].pin_reason,
		       ci[i].zero_method[0] ? ci[i].zero_method : "-", ci[i].holds);
	l1_arena_close(a);
	return 0;
}

int cmd_memcheck(struct ctl *c)
{
	static char rep[65536];
	struct l1_arena *a = ctl_open(c, 0);
	if (!a)
		return EXIT_FAILED;
	int n = l1_arena_memcheck(a, c->repair, rep, sizeof rep);
	l1_arena_close(a);
	if (n < 0)
		return ctl_fail("memcheck", n);
	fputs(rep, stdout);
	if (n)
		fprintf(stderr, "l1ctl: memcheck: %d problem(s)%s\n", n,
			c->repair ? " left after repair" : "; `l1ctl memcheck --repair` "
			"rebuilds the derived state from the records");
	return n ? EXIT_PROBLEMS : 0;
}

int cmd_gc(struct ctl *c)
{
	struct l1_gc_result g;
	struct l1_arena *a = ctl_open(c, 0);
	if (!a)
		return EXIT_FAILED;
	int r = l1_arena_gc(a, &g);
	if (r == 0)
		r = l1_arena_flush(a, 60000);
	l1_arena_close(a);
	if (r)
		return ctl_fail("gc", r);
	printf("gc: %llu objects of dead writers reclaimed (%llu bytes), %llu dirty extents "
	       "re-zeroed, %llu holds and %llu clients of dead processes dropped\n",
	       (unsigned long long)g.objects_reclaimed, (unsigned long long)g.bytes_reclaimed,
	       (unsigned long long)g.dirty_requeued, (unsigned long long)g.holds_dropped,
	       (unsigned long long)g.clients_dropped);
	return 0;
}

int cmd_destroy(struct ctl *c)
{
	struct l1_open_opts o;
	struct l1_arena *a;
	char path[L1_PATH_MAX];
	const char *env = getenv("L1ARENA_PATH");
	/* open first: for the path the library resolves, and so that a file it
	 * cannot read is refused with the reason (unless --force) */
	snprintf(path, sizeof path, "%s", c->path ? c->path : env && *env ? env :
		 L1_DEFAULT_PATH);
	l1_open_opts_init(&o);
	o.pin = L1_PIN_OFF;
	o.no_client = 1;
	o.readonly = 1;
	int r = l1_arena_open(c->path, &o, &a);
	if (r == 0) {
		snprintf(path, sizeof path, "%s", l1_arena_path(a));
		l1_arena_close(a);
	} else if (r == -ENOENT) {
		return ctl_fail("cannot destroy the pool", r);
	} else if (r != -EPROTO && r != -EBADMSG) {
		return ctl_fail_attach("cannot destroy the pool", c->path, r);
	} else if (!c->force) {
		ctl_fail("cannot destroy the pool", r);
		fprintf(stderr, "l1ctl: `l1ctl destroy --force%s%s` removes the file anyway.\n",
			c->path ? " --path " : "", c->path ? c->path : "");
		return EXIT_FAILED;
	}
	r = l1_arena_destroy(c->path, c->force);
	if (r) {
		ctl_fail("cannot destroy the pool", r);
		if (r == -EBUSY)
			fprintf(stderr, "l1ctl: stop those processes (an l1fs view: unmount it), or "
				"add --force.\n");
		return EXIT_FAILED;
	}
	printf("destroyed %s\n", path);
	return 0;
}
