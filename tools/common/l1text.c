/*
 * l1text.c - formatting shared by l1ctl and l1fs (see l1text.h): units,
 * times, escaped keys, JSON strings, and the pool's Prometheus families.
 * Every series carries pool="PATH"; per-process series are summed by pid (a
 * process may hold several handles, hence several client slots) so that no
 * two samples of a family have the same labels.
 */
#include "l1text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *l1t_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < sizeof unit / sizeof unit[0]) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.2f %s", v, unit[u]);
	return buf;
}

const char *l1t_duration(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000000ull)
		snprintf(buf, len, "%.0f µs", (double)ns / 1e3);
	else if (ns < 1000000000ull)
		snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", (double)ns / 1e9);
	return buf;
}

const char *l1t_time(uint64_t ns, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)(ns / 1000000000ull);
	char day[32];
	if (!ns || !gmtime_r(&t, &tm)) {
		snprintf(buf, len, "-");
		return buf;
	}
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03lluZ", day, (unsigned long long)(ns % 1000000000ull / 1000000));
	return buf;
}

void l1t_key(FILE *f, const char *key)
{
	if (!key || !key[0]) {
		fputc('-', f);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			fputc(*p, f);
		else
			fprintf(f, "\\x%02x", *p);
}

void l1t_safe(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
}

void l1t_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

void l1t_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

const char *l1t_pin_name(uint32_t s)
{
	switch (s) {
	case L1_PIN_NONE: return "off";
	case L1_PIN_PINNED: return "pinned";
	case L1_PIN_UNPINNED: return "unpinned";
	case L1_PIN_DEFERRED: return "deferred";
	default: return "unknown";
	}
}

void l1t_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void l1t_series(FILE *f, struct l1_arena *a, const char *name)
{
	fprintf(f, "%s{pool=\"", name);
	l1t_label(f, l1_arena_path(a));
	fputc('"', f);
}

void l1t_sample(FILE *f, struct l1_arena *a, const char *name, const char *type,
		const char *help, double v)
{
	l1t_family(f, name, type, help);
	l1t_series(f, a, name);
	fprintf(f, "} %.17g\n", v);
}

/* One attached process: its client slots summed. */
struct proc {
	int32_t pid;
	uint32_t uid;
	uint64_t holds, pinned;
	uint32_t pin_status, alive;
	char comm[16];
};

/* The data sizes of the live objects added up (used_bytes counts whole
 * blocks): one pass over the records, like a listing of objects/. */
static int data_bytes(struct l1_arena *a, uint64_t *out)
{
	enum { BATCH = 256 };
	struct l1_obj_info *oi = malloc(BATCH * sizeof *oi);
	uint64_t cursor = 0, sum = 0;
	int n;
	if (!oi)
		return -ENOMEM;
	while ((n = l1_obj_list(a, &cursor, oi, BATCH)) > 0)
		for (int i = 0; i < n; i++)
			if (oi[i].state != L1_STATE_DIRTY)
				sum += oi[i].obj.data_size;
	free(oi);
	*out = sum;
	return n < 0 ? n : 0;
}

static int proc_cmp(const void *x, const void *y)
{
	const struct proc *a = x, *b = y;
	return (a->pid > b->pid) - (a->pid < b->pid);
}

/* The attached processes by pid, in a malloc'd array. */
static int procs_get(struct l1_arena *a, uint64_t hint, struct proc **out)
{
	uint32_t max = (uint32_t)(hint + 64 < 65536 ? hint + 64 : 65536);
	struct l1_client_info *ci = calloc(max, sizeof *ci);
	struct l1_client_owner *co = calloc(max, sizeof *co);
	struct proc *p = calloc(max, sizeof *p);
	int n = -ENOMEM, m = 0, np = 0;
	if (!ci || !co || !p)
		goto out;
	if ((n = l1_arena_clients(a, ci, max)) < 0 || (m = l1_arena_client_owners(a, co, max)) < 0) {
		n = n < 0 ? n : m;
		goto out;
	}
	if (n > (int)max)
		n = (int)max;
	for (int i = 0; i < n; i++) {
		struct proc *q = &p[np++];
		q->pid = ci[i].pid;
		q->holds = ci[i].holds;
		q->pinned = ci[i].pinned_bytes;
		q->pin_status = ci[i].pin_status;
		q->alive = ci[i].alive;
		/* the same order, unless a client came or went between the calls */
		for (int k = 0; m > 0 && k < m && k < (int)max; k++)
			if (co[(i + k) % m].pid == ci[i].pid &&
			    co[(i + k) % m].start_time == ci[i].start_time) {
				q->uid = co[(i + k) % m].uid;
				memcpy(q->comm, co[(i + k) % m].comm, sizeof q->comm);
				break;
			}
	}
	qsort(p, (size_t)np, sizeof *p, proc_cmp);
	n = 0;
	for (int i = 0; i < np; i++) {          /* merge slots of one pid */
		if (n && p[n - 1].pid == p[i].pid) {
			p[n - 1].holds += p[i].holds;
			p[n - 1].pinned += p[i].pinned;
			continue;
		}
		p[n++] = p[i];
	}
out:
	free(ci);
	free(co);
	if (n < 0)
		free(p);
	else
		*out = p;
	return n;
}

/* name{pool,pid,uid,comm[,status]} */
static void proc_series(FILE *f, struct l1_arena *a, const char *name, const struct proc *p,
			const char *status)
{
	l1t_series(f, a, name);
	fprintf(f, ",pid=\"%d\",uid=\"%u\",comm=\"", p->pid, p->uid);
	l1t_label(f, p->comm);
	if (status)
		fprintf(f, "\",status=\"%s", status);
	fputs("\"}", f);
}

int l1t_metrics(FILE *f, struct l1_arena *a)
{
	static const char *state[] = { "free", "allocated", "published", "dirty", "doomed" };
	struct l1_usage u;
	struct l1_stats s;
	struct l1_vm_space vm;
	struct proc *p = NULL;
	int r, n;
	uint64_t data;
	if ((r = l1_arena_usage(a, &u)) < 0 || (r = l1_arena_stats(a, &s)) < 0 ||
	    (r = l1_get_vm_space(a, &vm)) < 0 || (r = data_bytes(a, &data)) < 0)
		return r;
	if ((n = procs_get(a, u.clients, &p)) < 0)
		return n;

	l1t_family(f, "l1arena_info", "gauge", "Pool identity: backing, pool id, library version.");
	l1t_series(f, a, "l1arena_info");
	fprintf(f, ",backing=\"");
	l1t_label(f, u.backing);
	fprintf(f, "\",pool_id=\"%llu\",version=\"%d.%d\"} 1\n", (unsigned long long)vm.pool_id,
		L1_VERSION_MAJOR, L1_VERSION_MINOR);
	l1t_sample(f, a, "l1arena_size_bytes", "gauge", "Configured size of the data region.", (double)u.total_bytes);
	l1t_sample(f, a, "l1arena_used_bytes", "gauge", "Bytes in live objects (allocated, published, freed but held).", (double)u.used_bytes);
	l1t_sample(f, a, "l1arena_data_bytes", "gauge", "Data sizes of the live objects added up (used_bytes counts whole blocks).", (double)data);
	l1t_sample(f, a, "l1arena_committed_bytes", "gauge", "Bytes of the data region backed by pages now.", (double)u.committed_bytes);
	l1t_sample(f, a, "l1arena_free_bytes", "gauge", "Bytes neither used nor dirty, committed or not.", (double)u.free_bytes);
	l1t_sample(f, a, "l1arena_free_committed_bytes", "gauge", "Free bytes in the committed part (compare with the largest free extent).",
		   (double)(u.committed_bytes > u.used_bytes + u.dirty_bytes ? u.committed_bytes - u.used_bytes - u.dirty_bytes : 0));
	l1t_sample(f, a, "l1arena_largest_free_extent_bytes", "gauge", "Largest free run in the committed part.", (double)u.largest_free_bytes);
	l1t_sample(f, a, "l1arena_dirty_bytes", "gauge", "Bytes freed and awaiting zeroing.", (double)u.dirty_bytes);
	l1t_sample(f, a, "l1arena_freed_held_bytes", "gauge", "Bytes of freed objects that readers still hold (reused at the last release).", (double)s.doomed_bytes);
	l1t_sample(f, a, "l1arena_metadata_bytes", "gauge", "Bytes of header, records, indexes and bitmaps.", (double)u.metadata_bytes);
	l1t_sample(f, a, "l1arena_hugepage_size_bytes", "gauge", "Page size of the backing.", (double)u.hugepage_size);
	l1t_sample(f, a, "l1arena_block_size_bytes", "gauge", "Allocation granularity.", (double)u.align_bytes);
	l1t_sample(f, a, "l1arena_grow_step_bytes", "gauge", "Lazy growth step (and pin chunk).", (double)u.grow_step_bytes);
	l1t_sample(f, a, "l1arena_lazy", "gauge", "1 if the pool grows on demand.", u.lazy);
	l1t_sample(f, a, "l1arena_grow_failed", "gauge", "1 if the last lazy growth failed.", u.grow_failed);
	l1t_sample(f, a, "l1arena_zero_on_free", "gauge", "1 if freed memory is zeroed.", u.zero_on_free);
	l1t_family(f, "l1arena_objects", "gauge", "Object records by state (free: unused records).");
	for (unsigned i = 0; i < 5; i++) {
		l1t_series(f, a, "l1arena_objects");
		fprintf(f, ",state=\"%s\"} %llu\n", state[i], (unsigned long long)u.objects[i]);
	}
	l1t_sample(f, a, "l1arena_object_slots", "gauge", "Object records in the pool (max_objects).", (double)u.max_objects);
	l1t_sample(f, a, "l1arena_holds", "gauge", "Holds on objects, all processes.", (double)u.holds);
	l1t_sample(f, a, "l1arena_clients", "gauge", "Client slots of attached processes.", (double)u.clients);
	l1t_sample(f, a, "l1arena_allocs_total", "counter", "Objects allocated since create.", (double)u.allocs);
	l1t_sample(f, a, "l1arena_frees_total", "counter", "Objects freed since create.", (double)u.frees);
	l1t_sample(f, a, "l1arena_allocs_refused_total", "counter", "Allocate calls refused for lack of space (out of memory, object table full).", (double)u.ooms);
	l1t_sample(f, a, "l1arena_zero_waits_total", "counter", "Allocate calls that waited for freed memory to be zeroed.", (double)s.zero_waits);
	l1t_sample(f, a, "l1arena_zero_wait_seconds_total", "counter", "Time allocate calls spent waiting for zeroing.", (double)s.zero_wait_ns / 1e9);
	l1t_sample(f, a, "l1arena_zeroed_bytes_total", "counter", "Bytes zeroed by all processes since create.", (double)u.zeroed_bytes);
	l1t_sample(f, a, "l1arena_zero_busy_seconds_total", "counter", "Time with zeroing in flight.", (double)u.zero_busy_ns / 1e9);
	l1t_sample(f, a, "l1arena_lock_repairs_total", "counter", "Repairs after a lock owner died.", (double)u.repairs);
	l1t_sample(f, a, "l1arena_gc_reclaimed_objects_total", "counter", "Unpublished objects of dead writers reclaimed by gc (any process).", (double)s.gc_objects_reclaimed);
	l1t_sample(f, a, "l1arena_gc_dropped_holds_total", "counter", "Holds of dead processes dropped by gc.", (double)s.gc_holds_dropped);
	l1t_sample(f, a, "l1arena_gc_dropped_clients_total", "counter", "Client slots of dead processes dropped by gc.", (double)s.gc_clients_dropped);
	l1t_sample(f, a, "l1arena_gc_requeued_extents_total", "counter", "Dirty extents a dead process was zeroing, zeroed again by gc.", (double)s.gc_dirty_requeued);

	static const struct {
		const char *name, *help;
	} per_proc[] = {
		{ "l1arena_client_holds", "Holds per attached process." },
		{ "l1arena_client_pinned_bytes", "Bytes registered with CUDA per attached process." },
		{ "l1arena_client_pin_info", "Pin status of each attached process (1 for its status)." },
		{ "l1arena_client_alive", "1 if the attached process is alive." },
	};
	for (unsigned k = 0; k < 4; k++) {
		l1t_family(f, per_proc[k].name, "gauge", per_proc[k].help);
		for (int i = 0; i < n; i++) {
			uint64_t v = k == 0 ? p[i].holds : k == 1 ? p[i].pinned : k == 2 ? 1 : p[i].alive != 0;
			proc_series(f, a, per_proc[k].name, &p[i],
				    k == 2 ? l1t_pin_name(p[i].pin_status) : NULL);
			fprintf(f, " %llu\n", (unsigned long long)v);
		}
	}
	free(p);
	return ferror(f) ? -EIO : 0;
}
