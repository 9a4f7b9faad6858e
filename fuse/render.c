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
#include "../tools/common/l1text.h"

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



/* Bytes as "<human> (<exact>)". */
#define HS(v, i) l1fs_fmt_size((v), hs[i], sizeof hs[i])

int l1fs_render_stats(struct l1fs *fs, struct l1fs_buf *b)
{
	struct l1_usage u;
	char hs[8][32], ts[48];
	struct l1_stats st;
	char d[2][32];
	int r = l1_arena_usage(fs->arena, &u);
	if (r < 0 || (r = l1_arena_stats(fs->arena, &st)) < 0)
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
	uint64_t free_c = u.committed_bytes > u.used_bytes + u.dirty_bytes ?
			  u.committed_bytes - u.used_bytes - u.dirty_bytes : 0;
	l1fs_buf_printf(b, "largest free      %s of %s free in the committed part  [%" PRIu64 " bytes]\n",
			HS(u.largest_free_bytes, 0), HS(free_c, 1), u.largest_free_bytes);
	l1fs_buf_printf(b, "freed, held       %s in %" PRIu64 " objects (reused when their readers let go)\n",
			HS(st.doomed_bytes, 0), st.doomed_objects);
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
	l1fs_buf_printf(b, "zeroing           %s, method %s; %s zeroed since create, busy %s\n",
			u.zero_on_free ? "on free" : "OFF", u.zero_method,
			HS(u.zeroed_bytes, 0), l1t_duration(u.zero_busy_ns, d[0], sizeof d[0]));
	l1fs_buf_printf(b, "zero waits        %" PRIu64 " allocations waited for zeroing, %s in all\n",
			st.zero_waits, l1t_duration(st.zero_wait_ns, d[1], sizeof d[1]));
	l1fs_buf_printf(b, "clients           %" PRIu64 " attached (see clients)\n", u.clients);
	l1fs_buf_printf(b, "counters          %" PRIu64 " allocs, %" PRIu64 " frees, %" PRIu64
			" refused, %" PRIu64 " lock repairs (since create)\n",
			u.allocs, u.frees, u.ooms, u.repairs);
	l1fs_buf_printf(b, "gc, all processes %" PRIu64 " objects reclaimed, %" PRIu64 " holds and %"
			PRIu64 " clients dropped, %" PRIu64 " extents requeued (since create)\n",
			st.gc_objects_reclaimed, st.gc_holds_dropped, st.gc_clients_dropped,
			st.gc_dirty_requeued);
	if (fs->gc_interval_ms)
		l1fs_buf_printf(b, "view gc           every %s; ", l1t_duration(fs->gc_interval_ms * 1000000ull, d[0], sizeof d[0]));
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
	l1fs_buf_printf(b, "view files open   %" PRIu64 "%s\n", atomic_load(&fs->open_files),
			atomic_load(&fs->stop_signal) ? " (asked to stop: stopping when the last closes)" : "");
	return b->oom ? -ENOMEM : 0;
}

/* The readers behind the view's holds, by pid: how many objects each holds
 * through open files (fuse_req_ctx at open).  Returns how many there are. */
struct reader {
	pid_t pid;
	uint64_t holds;
	char comm[16];
};

static int readers_get(struct l1fs *fs, struct reader *out, int max)
{
	int n = 0;
	pthread_mutex_lock(&fs->handles_lock);
	for (struct l1fs_handle *l = fs->handles.next; l != &fs->handles; l = l->next) {
		if (!l->held)
			continue;
		int k = 0;
		while (k < n && out[k].pid != l->opener)
			k++;
		if (k == n) {
			if (n == max)
				continue;
			memset(&out[n], 0, sizeof out[n]);
			out[n].pid = l->opener;
			memcpy(out[n].comm, l->comm, sizeof out[n].comm);
			n++;
		}
		out[k].holds++;
	}
	pthread_mutex_unlock(&fs->handles_lock);
	return n;
}

#define MAX_READERS 256

int l1fs_render_metrics(struct l1fs *fs, struct l1fs_buf *b)
{
	static struct reader rd[MAX_READERS];  /* under readers_lock below */
	static pthread_mutex_t readers_lock = PTHREAD_MUTEX_INITIALIZER;
	struct l1_arena *a = fs->arena;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	int r = l1t_metrics(f, a);
	if (r == 0) {
		l1t_sample(f, a, "l1arena_view_gc_runs_total", "counter", "Periodic gc passes run by l1fs.", (double)atomic_load(&fs->gc_runs));
		l1t_sample(f, a, "l1arena_view_gc_reclaimed_bytes_total", "counter", "Bytes of dead writers' objects reclaimed by l1fs's gc.", (double)atomic_load(&fs->gc_bytes));
		l1t_sample(f, a, "l1arena_view_gc_errors_total", "counter", "Failed gc passes of l1fs.", (double)atomic_load(&fs->gc_errors));
		l1t_sample(f, a, "l1arena_view_open_files", "gauge", "Object files open through the view (each holds its object).", (double)atomic_load(&fs->open_files));
		l1t_family(f, "l1arena_view_reader_holds", "gauge", "Objects held through open view files, by the reader that opened them.");
		pthread_mutex_lock(&readers_lock);
		int n = readers_get(fs, rd, MAX_READERS);
		for (int i = 0; i < n; i++) {
			l1t_series(f, a, "l1arena_view_reader_holds");
			fprintf(f, ",pid=\"%d\",comm=\"", (int)rd[i].pid);
			l1t_label(f, rd[i].comm);
			fprintf(f, "\"} %llu\n", (unsigned long long)rd[i].holds);
		}
		pthread_mutex_unlock(&readers_lock);
	}
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r == 0 && text)
		l1fs_buf_printf(b, "%s", text);
	free(text);
	if (r < 0)
		return r;
	return b->oom ? -ENOMEM : 0;
}

int l1fs_render_clients(struct l1fs *fs, struct l1fs_buf *b)
{
	struct l1_usage u;
	struct l1_client_info *cl = NULL;
	struct l1_client_owner *co = NULL;
	struct reader rd[64];
	char hs[8][32], ts[48];
	int r = l1_arena_usage(fs->arena, &u);
	if (r < 0)
		return r;
	int nc = get_clients(fs, u.clients, &cl);
	if (nc < 0)
		return nc;
	int no = -ENOMEM;
	if ((co = calloc((size_t)nc + 64, sizeof *co)))
		no = l1_arena_client_owners(fs->arena, co, (uint32_t)nc + 64);
	if (no < 0) {
		free(cl);
		free(co);
		return no;
	}
	l1fs_buf_printf(b, "%-8s %-6s %-16s %-5s %-24s %6s %-9s %12s  %-24s %s\n", "PID", "UID",
			"COMMAND", "ALIVE", "ATTACHED", "HOLDS", "PIN", "PINNED", "ZEROING",
			"PIN REASON");
	for (int i = 0; i < nc; i++) {
		const struct l1_client_info *c = &cl[i];
		const struct l1_client_owner *o = NULL;
		for (int k = 0; k < no && !o; k++)
			if (co[k].pid == c->pid && co[k].start_time == c->start_time)
				o = &co[k];
		char uid[16] = "-";
		if (o)
			snprintf(uid, sizeof uid, "%u", o->uid);
		l1fs_buf_printf(b, "%-8d %-6s %-16s %-5s %-24s %6u %-9s %12s  %-24s %s\n", c->pid,
				uid, o && o->comm[0] ? o->comm : "-", c->alive ? "yes" : "no",
				l1t_time(c->attach_ns, ts, sizeof ts), c->holds,
				l1t_pin_name(c->pin_status), HS(c->pinned_bytes, 0),
				c->zero_method[0] ? c->zero_method : "-",
				c->pin_reason[0] ? c->pin_reason : "-");
	}
	free(cl);
	free(co);
	int n = readers_get(fs, rd, 64);
	l1fs_buf_printf(b, "\nreaders holding objects through this view (l1fs holds for them): %d\n", n);
	if (n)
		l1fs_buf_printf(b, "%-8s %-16s %s\n", "PID", "COMMAND", "OBJECTS HELD");
	for (int i = 0; i < n; i++)
		l1fs_buf_printf(b, "%-8d %-16s %llu\n", (int)rd[i].pid,
				rd[i].comm[0] ? rd[i].comm : "-", (unsigned long long)rd[i].holds);
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
	l1fs_buf_printf(b, "size:        %" PRIu64 "\n", oi->obj.data_size);
	l1fs_buf_printf(b, "phys_size:   %" PRIu64 "\n", oi->obj.size);
	l1fs_buf_printf(b, "offset:      %" PRIu64 "\n", oi->obj.offset);
	l1fs_buf_printf(b, "pool:        %" PRIu64 "\n", oi->obj.pool_id);
	l1fs_buf_printf(b, "owner_pid:   %d\n", oi->owner_pid);
	l1fs_buf_printf(b, "owner_start: %" PRIu64 " clock ticks after boot (/proc/PID/stat field 22)\n", oi->owner_start);
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
	"user.l1.layout", "user.l1.size", "user.l1.phys_size", "user.l1.offset",
	"user.l1.owner_pid",
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
		l1fs_buf_printf(b, "%" PRIu64, oi->obj.data_size);
	else if (!strcmp(n, "phys_size"))
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
