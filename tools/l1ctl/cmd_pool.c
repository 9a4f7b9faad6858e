/*
 * cmd_pool.c - l1ctl's pool commands: setup, create, info, memcheck, gc,
 * destroy, and the helpers every command uses to open the pool and to say
 * what went wrong in a sentence.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "l1ctl.h"
#include "../common/l1text.h"

int ctl_fail(const char *what, int err)
{
	const char *msg = l1_last_error();
	fprintf(stderr, "l1ctl: %s: ", what);
	l1t_safe(stderr, msg && *msg ? msg : l1_strerror(err));     /* may quote a key */
	fputc('\n', stderr);
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
		fprintf(stderr, "l1ctl: run as the pool's owner or as root. Whoever can open a "
			"pool read-write can read and change all of it, so a pool is one trust "
			"domain: give each tenant its own pool; members of the pool's group can "
			"read through a read-only attach when it has --mode 0640.\n");
		break;
	case -EPROTO:
		fprintf(stderr, "l1ctl: this l1ctl cannot read that pool's format version: use "
			"the tools built with the library that made the pool, or remove it with "
			"`l1ctl destroy --force%s%s%s` and create it again.\n",
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
	o.readonly = readonly || c->read_only;
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
	l1t_size(b, buf, len);
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
	if (c->path && strcmp(l1_arena_path(a), c->path))
		printf("note: the pool is at %s, not at %s: that directory does not exist or "
		       "has no huge pages left, and --allow-shm lets the pool move to /dev/shm; "
		       "name %s with --path from now on\n", l1_arena_path(a), c->path,
		       l1_arena_path(a));
	if (!strcmp(u.backing, "shm"))
		printf("note: no huge pages were used (shm fallback); run `l1ctl setup` as "
		       "root for hugetlbfs\n");
	l1_arena_close(a);
	return 0;
}

static void print_info_json(struct l1_arena *a, const struct l1_usage *u)
{
	printf("{\"path\":");
	l1t_json_str(stdout, l1_arena_path(a));         /* a path may hold any byte */
	printf(",\"used_bytes\":%llu,\"total_bytes\":%llu,"
	       "\"committed_bytes\":%llu,\"dirty_bytes\":%llu,\"free_bytes\":%llu,"
	       "\"largest_free_bytes\":%llu,\"objects_allocated\":%llu,"
	       "\"objects_published\":%llu,\"objects_dirty\":%llu,\"objects_doomed\":%llu,"
	       "\"max_objects\":%llu,\"holds\":%llu,\"clients\":%llu,\"allocs\":%llu,"
	       "\"frees\":%llu,\"allocs_refused\":%llu,\"repairs\":%llu,\"zeroed_bytes\":%llu,"
	       "\"backing\":\"%s\",\"hugepage_size\":%llu,\"lazy\":%d,\"zero_on_free\":%d,"
	       "\"grow_failed\":%d,\"metadata_bytes\":%llu,",
	       (unsigned long long)u->used_bytes,
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
	struct l1_stats st;
	l1_arena_stats(a, &st);
	printf("\"freed_held_bytes\":%llu,\"zero_waits\":%llu,\"zero_wait_ns\":%llu,"
	       "\"gc_objects_reclaimed\":%llu,\"gc_holds_dropped\":%llu,"
	       "\"gc_clients_dropped\":%llu,\"gc_dirty_requeued\":%llu}\n",
	       (unsigned long long)st.doomed_bytes, (unsigned long long)st.zero_waits,
	       (unsigned long long)st.zero_wait_ns, (unsigned long long)st.gc_objects_reclaimed,
	       (unsigned long long)st.gc_holds_dropped, (unsigned long long)st.gc_clients_dropped,
	       (unsigned long long)st.gc_dirty_requeued);
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
	char gs[32];
	printf("backing     %s, page %s, %s, grow step %s\n", u.backing, hp,
	       u.lazy ? "lazy" : "eager", l1t_size(u.grow_step_bytes, gs, sizeof gs));
	printf("used        %s of %s (%.1f%%), committed %s\n", used, tot, pct, com);
	printf("dirty       %s (zeroing %s; %s zeroed so far)\n", dirty,
	       u.zero_on_free ? "on" : "off", zb);
	uint64_t free_c = u.committed_bytes > u.used_bytes + u.dirty_bytes ?
			  u.committed_bytes - u.used_bytes - u.dirty_bytes : 0;
	char fc[32];
	printf("largest     %s free in one run, of %s free in the committed part\n", big,
	       l1t_size(free_c, fc, sizeof fc));
	printf("objects     %llu allocated, %llu published, %llu dirty, %llu doomed, "
	       "%llu free slots of %llu\n",
	       (unsigned long long)u.objects[1], (unsigned long long)u.objects[2],
	       (unsigned long long)u.objects[3], (unsigned long long)u.objects[4],
	       (unsigned long long)u.objects[0], (unsigned long long)u.max_objects);
	printf("holds       %llu\n", (unsigned long long)u.holds);
	struct l1_stats st;
	char d[2][32];
	l1_arena_stats(a, &st);
	printf("freed, held %s in %llu objects (reused when their readers let go)\n",
	       l1t_size(st.doomed_bytes, d[0], sizeof d[0]), (unsigned long long)st.doomed_objects);
	printf("activity    %llu allocs, %llu frees, %llu refused, %llu lock repairs "
	       "(since create)\n",
	       (unsigned long long)u.allocs, (unsigned long long)u.frees,
	       (unsigned long long)u.ooms, (unsigned long long)u.repairs);
	printf("zero waits  %llu allocations waited for zeroing, %s in all\n",
	       (unsigned long long)st.zero_waits, l1t_duration(st.zero_wait_ns, d[1], sizeof d[1]));
	printf("gc          %llu objects reclaimed, %llu holds and %llu clients dropped, %llu "
	       "extents requeued (since create, all processes)\n",
	       (unsigned long long)st.gc_objects_reclaimed, (unsigned long long)st.gc_holds_dropped,
	       (unsigned long long)st.gc_clients_dropped, (unsigned long long)st.gc_dirty_requeued);
	printf("growth      %s%s\n", u.grow_failed ? "STOPPED: " : "", u.grow_reason);
	struct l1_health hl;
	l1_arena_health(a, &hl);
	printf("given back  %s\n", hl.grow_text);
	printf("lock        %s\n", hl.lock_text);
	printf("metadata    %s (%.3f%% of the pool)\n", meta,
	       100.0 * (double)u.metadata_bytes / (double)u.total_bytes);
	struct l1_client_info ci[64];
	struct l1_client_owner co[64];
	int n = l1_arena_clients(a, ci, 64);
	int no = l1_arena_client_owners(a, co, 64);
	printf("clients     %d\n", n);
	for (int i = 0; i < n && i < 64; i++) {
		const struct l1_client_owner *o = NULL;
		for (int k = 0; k < no && k < 64 && !o; k++)
			if (co[k].pid == ci[i].pid && co[k].start_time == ci[i].start_time)
				o = &co[k];
		printf("  pid %-8d uid %-6u %-16s %-5s holds %u; zeroing: %s; pin: %s (%s)\n",
		       ci[i].pid, o ? o->uid : 0, o && o->comm[0] ? o->comm : "-",
		       ci[i].alive ? "alive" : "DEAD", ci[i].holds,
		       ci[i].zero_method[0] ? ci[i].zero_method : "-",
		       l1t_pin_name(ci[i].pin_status), ci[i].pin_reason[0] ? ci[i].pin_reason : "-");
	}
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
	char rb[32];
	printf("gc: %llu objects of dead writers reclaimed (%s), %llu dirty extents "
	       "re-zeroed, %llu holds and %llu clients of dead processes dropped\n",
	       (unsigned long long)g.objects_reclaimed, l1t_size(g.bytes_reclaimed, rb, sizeof rb),
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

/* DIR/l1arena_NAME.prom, NAME the pool path with '/' and odd bytes as '_'. */
static void textfile_name(const char *dir, const char *pool, char *out, size_t len)
{
	char name[L1_PATH_MAX];
	size_t n = 0;
	for (const char *p = pool; *p && n + 1 < sizeof name; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			 (*p >= '0' && *p <= '9') || *p == '-' || *p == '.';
		if (!ok && n && name[n - 1] == '_')
			continue;
		name[n++] = ok ? *p : '_';
	}
	name[n] = 0;
	snprintf(out, len, "%s/l1arena%s%s.prom", dir, name[0] == '_' ? "" : "_", name);
}

/* Writes the metrics to a hidden temporary file in DIR (node_exporter reads
 * only *.prom), mode 0644, then renames it over DIR/l1arena_NAME.prom: a
 * scrape sees the old file or the new one, never half of one. */
static int write_textfile(struct l1_arena *a, const char *dir)
{
	char path[L1_PATH_MAX + 64], tmp[L1_PATH_MAX + 96];
	textfile_name(dir, l1_arena_path(a), path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s/.l1arena.%d.tmp", dir, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "l1ctl: cannot write in %s: %s\n", dir, strerror(errno));
		return EXIT_FAILED;
	}
	FILE *f = fdopen(fd, "w");
	int r = f ? l1t_metrics(f, a) : -errno;
	if (f && fchmod(fd, 0644) < 0)         /* whatever the umask says */
		r = -errno;
	if (f && fflush(f) != 0)
		r = -errno;
	if (f && r == 0 && fsync(fd) < 0)
		r = -errno;
	if (f ? fclose(f) != 0 : close(fd) != 0)
		r = r ? r : -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		fprintf(stderr, "l1ctl: cannot write %s: %s\n", path, strerror(-r));
		return EXIT_FAILED;
	}
	printf("wrote %s\n", path);
	return 0;
}

int cmd_metrics(struct ctl *c)
{
	struct l1_arena *a = ctl_open(c, 0);
	int rc = 0;
	if (!a)
		return EXIT_FAILED;
	if (c->textfile) {
		rc = write_textfile(a, c->textfile);
	} else {
		int r = l1t_metrics(stdout, a);
		if (r < 0)
			rc = ctl_fail("metrics", r);
	}
	l1_arena_close(a);
	return rc;
}
