/*
 * render.c - the text of the view's generated files: stats (for people),
 * metrics (Prometheus text exposition 0.0.4, every name l1arena_*, a HELP
 * and TYPE line for each family, counters ending in _total, units in the
 * name), clients (one line per attached process), meta/ID (one "name: value"
 * line per record field), and the user.l1.* extended attributes.  Everything
 * is read from the library at the call (l1_arena_usage, l1_arena_clients,
 * l1_obj_info), so each open shows the pool as it is then.  Pure formatting:
 * no locks of its own; allocation failures surface through buf->oom.
 */
#include "l1fs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *state_names[] = { "free", "allocated", "published", "dirty",
				     "doomed" };

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0.0;
}

/* Clients as the library reports them, in a malloc'd array. */
static int get_clients(struct l1fs *fs, uint64_t hint, struct l1_client_info **out)
{
	uint32_t max = (uint32_t)(hint + 64 < 65536 ? hint + 64 : 65536);
	struct l1_client_info *c = calloc(max, sizeof *c);
	if (!c)
		return -ENOMEM;
	int n = l1_arena_clients(fs->arena, c, max);
	if (n < 0) {
		free(c);
		return n;
	}
	*out = c;
	return n > (int)max ? (int)max : n;
}

static const char *pin_name(uint32_t s)
{
	switch (s) {
	case L1_PIN_NONE: return "off";
	case L1_PIN_PINNED: return "pinned";
	case L1_PIN_UNPINNED: return "unpinned";
	case L1_PIN_DEFERRED: return "deferred";
	default: return "unknown";
	}
}

/* Bytes as "<human> (<exact>)". */
#define HS(v, i) l1fs_fmt_size((v), hs[i], sizeof hs[i])

int l1fs_render_stats(struct l1fs *fs, struct l1fs_buf *b)
{
	struct l1_usage u;
	char hs[8][32], ts[48];
	int r = l1_arena_usage(fs->arena, &u);
	if (r < 0)
		return r;

	l1fs_buf_printf(b, "pool              %s (id %" PRIu64 ")\n",
			l1_arena_path(fs->arena), fs->pool_id);
	l1fs_buf_printf(b, "backing           %s, huge page %s, block %s, metadata %s\n",
			u.backing, HS(u.hugepage_size, 0), HS(u.align_bytes, 1),
			HS(u.metadata_bytes, 2));
	l1fs_buf_printf(b, "used              %s of %s (%.1f%%)  [%" PRIu64 " of %" PRIu64 " bytes]\n",
			HS(u.used_bytes, 0), HS(u.total_bytes, 1), pct(u.used_bytes, u.total_bytes),
			u.used_bytes, u.total_bytes);
	l1fs_buf_printf(b, "committed         %s of %s (%.1f%%)  [%" PRIu64 " bytes]\n",
			HS(u.committed_bytes, 0), HS(u.total_bytes, 1),
			pct(u.committed_bytes, u.total_bytes), u.committed_bytes);
	l1fs_buf_printf(b, "free              %s (%.1f%%)  [%" PRIu64 " bytes]\n",
			HS(u.free_bytes, 0), pct(u.free_bytes, u.total_bytes), u.free_bytes);
	l1fs_buf_printf(b, "dirty             %s  [%" PRIu64 " bytes awaiting zeroing]\n",
			HS(u.dirty_bytes, 0), u.dirty_bytes);
	l1fs_buf_printf(b, "largest free      %s  [%" PRIu64 " bytes, committed part]\n",
			HS(u.largest_free_bytes, 0), u.largest_free_bytes);
	if (u.lazy)
		l1fs_buf_printf(b, "growth            lazy, step %s, %s%s%s\n",
				HS(u.grow_step_bytes, 0),
				u.committed_bytes >= u.total_bytes ? "fully committed" :
				u.grow_failed ? "last growth FAILED" : "growing on demand",
				u.grow_failed && u.grow_reason[0] ? ": " : "",
				u.grow_failed ? u.grow_reason : "");
	else
		l1fs_buf_printf(b, "growth            eager (all pages committed at create)\n");
	l1fs_buf_printf(b, "objects           %" PRIu64 " allocated, %" PRIu64 " published, %"
			PRIu64 " dirty, %" PRIu64 " doomed; %" PRIu64 " of %" PRIu64
			" slots free\n",
			u.objects[L1_STATE_ALLOCATED], u.objects[L1_STATE_PUBLISHED],
			u.objects[L1_STATE_DIRTY], u.objects[L1_STATE_DOOMED],
			u.objects[L1_STATE_FREE], u.max_objects);
	struct l1_health hl;
	l1_arena_health(fs->arena, &hl);
	l1fs_buf_printf(b, "lock              %s\n", hl.lock_text);
	l1fs_buf_printf(b, "given back        %s\n", hl.grow_text);
	l1fs_buf_printf(b, "holds             %" PRIu64 "\n", u.holds);
	l1fs_buf_printf(b, "zeroing           %s, method %s; %s zeroed since create, busy %.3f s\n",
			u.zero_on_free ? "on free" : "OFF", u.zero_method,
			HS(u.zeroed_bytes, 0), (double)u.zero_busy_ns / 1e9);
	l1fs_buf_printf(b, "clients           %" PRIu64 " attached (see clients)\n", u.clients);
	l1fs_buf_printf(b, "counters          %" PRIu64 " allocs, %" PRIu64 " frees, %" PRIu64
			" refused for lack of space, %" PRIu64 " lock repairs\n",
			u.allocs, u.frees, u.ooms, u.repairs);
	if (fs->gc_interval_ms)
		l1fs_buf_printf(b, "view gc           every %.1f s; ", fs->gc_interval_ms / 1000.0);
	else
		l1fs_buf_printf(b, "view gc           off (gc_interval=0); ");
	l1fs_buf_printf(b, "%" PRIu64 " runs, last %s; reclaimed %"
			PRIu64 " objects (%s), %" PRIu64 " dirty requeued, %" PRIu64
			" holds and %" PRIu64 " clients dropped\n",
			atomic_load(&fs->gc_runs),
			l1fs_fmt_time(atomic_load(&fs->gc_last_ns), ts, sizeof ts),
			atomic_load(&fs->gc_objects), HS(atomic_load(&fs->gc_bytes), 0),
			atomic_load(&fs->gc_dirty), atomic_load(&fs->gc_holds),
			atomic_load(&fs->gc_clients));
	l1fs_buf_printf(b, "view files open   %" PRIu64 "\n", atomic_load(&fs->open_files));
	return b->oom ? -ENOMEM : 0;
}

static void family(struct l1fs_buf *b, const char *name, const char *type,
		   const char *help)
{
	l1fs_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct l1fs_buf *b, const char *name, const char *type,
		   const char *help, double v)
{
	family(b, name, type, help);
	l1fs_buf_printf(b, "%s %.17g\n", name, v);
}

int l1fs_render_metrics(struct l1fs *fs, struct l1fs_buf *b)
{
	struct l1_usage u;
	struct l1_client_info *cl = NULL;
	int r = l1_arena_usage(fs->arena, &u);
	if (r < 0)
		return r;
	int nc = get_clients(fs, u.clients, &cl);
	if (nc < 0)
		return nc;

	family(b, "l1arena_info", "gauge", "Pool identity: path, backing, zeroing method of the view, format version.");
	l1fs_buf_printf(b, "l1arena_info{path=\"");
	l1fs_buf_label(b, l1_arena_path(fs->arena));
	l1fs_buf_printf(b, "\",backing=\"");
	l1fs_buf_label(b, u.backing);
	l1fs_buf_printf(b, "\",zero_method=\"");
	l1fs_buf_label(b, u.zero_method);
	l1fs_buf_printf(b, "\",pool_id=\"%" PRIu64 "\",version=\"%d.%d\"} 1\n",
			fs->pool_id, L1_VERSION_MAJOR, L1_VERSION_MINOR);
	sample(b, "l1arena_used_bytes", "gauge", "Bytes in live objects (allocated, published, doomed).", (double)u.used_bytes);
	sample(b, "l1arena_size_bytes", "gauge", "Configured size of the data region.", (double)u.total_bytes);
	sample(b, "l1arena_committed_bytes", "gauge", "Bytes of the data region backed by pages now.", (double)u.committed_bytes);
	sample(b, "l1arena_free_bytes", "gauge", "Bytes neither used nor dirty.", (double)u.free_bytes);
	sample(b, "l1arena_dirty_bytes", "gauge", "Bytes freed and awaiting zeroing.", (double)u.dirty_bytes);
	sample(b, "l1arena_largest_free_extent_bytes", "gauge", "Largest free run in the committed part.", (double)u.largest_free_bytes);
	sample(b, "l1arena_used_ratio", "gauge", "used_bytes / size_bytes.", u.total_bytes ? (double)u.used_bytes / (double)u.total_bytes : 0);
	sample(b, "l1arena_committed_ratio", "gauge", "committed_bytes / size_bytes.", u.total_bytes ? (double)u.committed_bytes / (double)u.total_bytes : 0);
	sample(b, "l1arena_metadata_bytes", "gauge", "Bytes of header, records, indexes and bitmaps.", (double)u.metadata_bytes);
	sample(b, "l1arena_hugepage_size_bytes", "gauge", "Page size of the backing.", (double)u.hugepage_size);
	sample(b, "l1arena_block_size_bytes", "gauge", "Allocation granularity.", (double)u.align_bytes);
	sample(b, "l1arena_grow_step_bytes", "gauge", "Lazy growth step (and pin chunk).", (double)u.grow_step_bytes);
	sample(b, "l1arena_lazy", "gauge", "1 if the pool grows on demand.", u.lazy);
	sample(b, "l1arena_grow_failed", "gauge", "1 if the last lazy growth failed.", u.grow_failed);
	sample(b, "l1arena_zero_on_free", "gauge", "1 if freed memory is zeroed.", u.zero_on_free);
	family(b, "l1arena_objects", "gauge", "Object records by state.");
	for (unsigned s = L1_STATE_ALLOCATED; s <= L1_STATE_DOOMED; s++)
		l1fs_buf_printf(b, "l1arena_objects{state=\"%s\"} %" PRIu64 "\n",
				state_names[s], u.objects[s]);
	sample(b, "l1arena_object_slots_free", "gauge", "Free object records.", (double)u.objects[L1_STATE_FREE]);
	sample(b, "l1arena_object_slots", "gauge", "Object records in the pool (max_objects).", (double)u.max_objects);
	sample(b, "l1arena_holds", "gauge", "Holds on objects, all processes.", (double)u.holds);
	sample(b, "l1arena_clients", "gauge", "Processes attached.", (double)u.clients);
	sample(b, "l1arena_allocs_total", "counter", "Objects allocated since create.", (double)u.allocs);
	sample(b, "l1arena_frees_total", "counter", "Objects freed since create.", (double)u.frees);
	sample(b, "l1arena_ooms_total", "counter", "Allocations refused for lack of space.", (double)u.ooms);
	sample(b, "l1arena_lock_repairs_total", "counter", "Repairs after a lock owner died.", (double)u.repairs);
	sample(b, "l1arena_zeroed_bytes_total", "counter", "Bytes zeroed by all processes since create.", (double)u.zeroed_bytes);
	sample(b, "l1arena_zero_busy_seconds_total", "counter", "Time with zeroing in flight.", (double)u.zero_busy_ns / 1e9);

	family(b, "l1arena_client_holds", "gauge", "Holds per attached process.");
	for (int i = 0; i < nc; i++)
		l1fs_buf_printf(b, "l1arena_client_holds{pid=\"%d\"} %u\n", cl[i].pid, cl[i].holds);
	family(b, "l1arena_client_pinned_bytes", "gauge", "Bytes registered with CUDA per attached process.");
	for (int i = 0; i < nc; i++)
		l1fs_buf_printf(b, "l1arena_client_pinned_bytes{pid=\"%d\",status=\"%s\"} %" PRIu64 "\n",
				cl[i].pid, pin_name(cl[i].pin_status), cl[i].pinned_bytes);
	family(b, "l1arena_client_alive", "gauge", "1 if the attached process is alive.");
	for (int i = 0; i < nc; i++)
		l1fs_buf_printf(b, "l1arena_client_alive{pid=\"%d\"} %u\n", cl[i].pid, cl[i].alive ? 1u : 0u);

	sample(b, "l1arena_view_gc_runs_total", "counter", "Periodic gc passes run by l1fs.", (double)atomic_load(&fs->gc_runs));
	sample(b, "l1arena_view_gc_reclaimed_objects_total", "counter", "Unpublished objects of dead writers reclaimed by l1fs.", (double)atomic_load(&fs->gc_objects));
	sample(b, "l1arena_view_gc_reclaimed_bytes_total", "counter", "Bytes reclaimed by l1fs gc.", (double)atomic_load(&fs->gc_bytes));
	sample(b, "l1arena_view_gc_errors_total", "counter", "Failed gc passes.", (double)atomic_load(&fs->gc_errors));
	sample(b, "l1arena_view_open_files", "gauge", "Object files open through the view (each holds its object).", (double)atomic_load(&fs->open_files));
	free(cl);
	return b->oom ? -ENOMEM : 0;
}

int l1fs_render_clients(struct l1fs *fs, struct l1fs_buf *b)
{
	struct l1_usage u;
	struct l1_client_info *cl = NULL;
	char hs[8][32], ts[48];
	int r = l1_arena_usage(fs->arena, &u);
	if (r < 0)
		return r;
	int nc = get_clients(fs, u.clients, &cl);
	if (nc < 0)
		return nc;
	l1fs_buf_printf(b, "%-8s %-5s %-30s %6s %-9s %12s  %-24s %s\n", "PID", "ALIVE",
			"ATTACHED", "HOLDS", "PIN", "PINNED", "ZEROING", "PIN REASON");
	for (int i = 0; i < nc; i++) {
		const struct l1_client_info *c = &cl[i];
		l1fs_buf_printf(b, "%-8d %-5s %-30s %6u %-9s %12s  %-24s %s\n", c->pid,
				c->alive ? "yes" : "no",
				l1fs_fmt_time(c->attach_ns, ts, sizeof ts), c->holds,
				pin_name(c->pin_status), HS(c->pinned_bytes, 0),
				c->zero_method[0] ? c->zero_method : "-",
				c->pin_reason[0] ? c->pin_reason : "-");
	}
	free(cl);
	return b->oom ? -ENOMEM : 0;
}

/* A key for people: printable bytes as they are, others as \xHH. */
static void key_text(struct l1fs_buf *b, const char *key)
{
	if (!key[0]) {
		l1fs_buf_printf(b, "-");
		return;
	}
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			l1fs_buf_printf(b, "%c", *p);
		else
			l1fs_buf_printf(b, "\\x%02x", *p);
	}
}

static void layout_text(struct l1fs *fs, const struct l1_obj_info *oi, char *buf,
			size_t len)
{
	struct l1_layout l;
	if (l1_arena_layout(fs->arena, oi->obj.layout_id, &l) < 0 ||
	    l1_layout_format(&l, buf, len) < 0)
		snprintf(buf, len, "?");
}

int l1fs_render_meta(struct l1fs *fs, const struct l1_obj_info *oi,
		     struct l1fs_buf *b)
{
	char lay[512], ts[48];
	const char *st = oi->state < 5 ? state_names[oi->state] : "?";

	layout_text(fs, oi, lay, sizeof lay);
	l1fs_buf_printf(b, "id:          %" PRIu64 "\n", oi->obj.id);
	l1fs_buf_printf(b, "slot:        %" PRIu64 "\n", (uint64_t)(oi->obj.id & 0xffffffffull));
	l1fs_buf_printf(b, "generation:  %" PRIu64 "\n", oi->obj.id >> 32);
	l1fs_buf_printf(b, "state:       %s\n", st);
	l1fs_buf_printf(b, "key:         ");
	key_text(b, oi->key);
	l1fs_buf_printf(b, "\nlayout:      %s\n", lay);
	l1fs_buf_printf(b, "size:        %" PRIu64 "\n", oi->obj.size);
	l1fs_buf_printf(b, "offset:      %" PRIu64 "\n", oi->obj.offset);
	l1fs_buf_printf(b, "pool:        %" PRIu64 "\n", oi->obj.pool_id);
	l1fs_buf_printf(b, "owner_pid:   %d\n", oi->owner_pid);
	l1fs_buf_printf(b, "owner_start: %" PRIu64 "\n", oi->owner_start);
	l1fs_buf_printf(b, "uid:         %u\n", oi->uid);
	l1fs_buf_printf(b, "gid:         %u\n", oi->gid);
	l1fs_buf_printf(b, "mode:        %04o\n", oi->mode & 07777);
	l1fs_buf_printf(b, "holds:       %u\n", oi->holds);
	l1fs_buf_printf(b, "ctime:       %s\n", l1fs_fmt_time(oi->ctime_ns, ts, sizeof ts));
	l1fs_buf_printf(b, "published:   %s\n", l1fs_fmt_time(oi->publish_ns, ts, sizeof ts));
	return b->oom ? -ENOMEM : 0;
}

/* The user.l1.* names, in the order getfattr -d shows them. */
static const char *xattr_list[] = {
	"user.l1.id", "user.l1.pool", "user.l1.state", "user.l1.key",
	"user.l1.layout", "user.l1.size", "user.l1.offset", "user.l1.owner_pid",
	"user.l1.holds", "user.l1.ctime", "user.l1.publish_time",
};

static int xattr_present(const struct l1_obj_info *oi, const char *name)
{
	if (!strcmp(name, "user.l1.key"))
		return oi->key[0] != 0;
	if (!strcmp(name, "user.l1.publish_time"))
		return oi->publish_ns != 0;
	return 1;
}

void l1fs_xattr_names(const struct l1_obj_info *oi, struct l1fs_buf *b)
{
	for (size_t i = 0; i < sizeof xattr_list / sizeof xattr_list[0]; i++) {
		if (!xattr_present(oi, xattr_list[i]))
			continue;
		l1fs_buf_printf(b, "%s", xattr_list[i]);
		l1fs_buf_printf(b, "%c", 0);
	}
}

int l1fs_xattr_get(struct l1fs *fs, const struct l1_obj_info *oi,
		   const char *name, struct l1fs_buf *b)
{
	char tmp[512];

	if (strncmp(name, "user.l1.", 8) || !xattr_present(oi, name))
		return -ENODATA;
	const char *n = name + 8;
	if (!strcmp(n, "id"))
		l1fs_buf_printf(b, "%" PRIu64, oi->obj.id);
	else if (!strcmp(n, "pool"))
		l1fs_buf_printf(b, "%" PRIu64, oi->obj.pool_id);
	else if (!strcmp(n, "state"))
		l1fs_buf_printf(b, "%s", oi->state < 5 ? state_names[oi->state] : "?");
	else if (!strcmp(n, "key"))
		l1fs_buf_printf(b, "%s", oi->key);
	else if (!strcmp(n, "layout")) {
		layout_text(fs, oi, tmp, sizeof tmp);
		l1fs_buf_printf(b, "%s", tmp);
	} else if (!strcmp(n, "size"))
		l1fs_buf_printf(b, "%" PRIu64, oi->obj.size);
	else if (!strcmp(n, "offset"))
		l1fs_buf_printf(b, "%" PRIu64, oi->obj.offset);
	else if (!strcmp(n, "owner_pid"))
		l1fs_buf_printf(b, "%d", oi->owner_pid);
	else if (!strcmp(n, "holds"))
		l1fs_buf_printf(b, "%u", oi->holds);
	else if (!strcmp(n, "ctime"))
		l1fs_buf_printf(b, "%s", l1fs_fmt_time(oi->ctime_ns, tmp, sizeof tmp));
	else if (!strcmp(n, "publish_time"))
		l1fs_buf_printf(b, "%s", l1fs_fmt_time(oi->publish_ns, tmp, sizeof tmp));
	else
		return -ENODATA;
	if (b->oom)
		return -ENOMEM;
	return (int)b->len;
}
