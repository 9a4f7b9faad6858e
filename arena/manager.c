/*
 * manager.c - pools: create (format the file, commit pages, write the header
 * last with a release store of the magic), open (check magic, version and
 * geometry before trusting anything), attach (client slot, zeroing engine,
 * pinning) and detach, destroy, and the lock-free usage and vm-space views.
 * The handle's client table slot (client.c: taken at attach with its lock
 * byte, freed at close only after the zeroing engine stopped) is written
 * under the pool lock when taken or dropped, and by this process alone (pin
 * status, beat) in between.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "pin.h"

#define META_ALIGN 4096ull

static uint64_t round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

const char *l1_arena_path(const struct l1_arena *a)
{
	return a ? a->path : NULL;
}

void l1_test_set_hook(struct l1_arena *a, void (*hook)(struct l1_arena *, int))
{
	if (a)
		a->test_hook = hook;
}

void l1_test_dirty_limit(struct l1_arena *a, uint64_t n)
{
	a->dirty_limit = n;
}

/* Geometry of a new pool into h (not yet mapped: a stack copy). */
static void plan_layout(struct l1_hdr *h, const struct l1_config *c, uint64_t hp)
{
	memset(h, 0, sizeof *h);
	h->major = L1_FMT_MAJOR;
	h->minor = L1_FMT_MINOR;
	h->hdr_size = L1_HDR_SIZE;
	h->rec_size = L1_REC_SIZE;
	h->hugepage_size = hp;
	h->block_size = c->align_bytes ? c->align_bytes : L1_DEFAULT_ALIGN;
	uint64_t unit = hp > h->block_size ? hp : h->block_size;
	/* the backing is whole huge pages; the usable data (nblocks) is
	 * exactly what was asked for, rounded down to whole blocks */
	h->pool_size = c->size_bytes;
	h->data_size = round_up(c->size_bytes, unit);
	uint64_t step = c->grow_step_bytes ? c->grow_step_bytes : L1_DEFAULT_GROW_STEP;
	step = round_up(step, unit);
	h->grow_step = step < h->data_size ? step : h->data_size;
	h->nblocks = h->pool_size / h->block_size;
	h->max_objects = c->max_objects ? c->max_objects : h->data_size / (64ull << 10);
	if (h->max_objects < 1024)
		h->max_objects = 1024;
	h->max_layouts = L1_MAX_LAYOUTS;
	h->nbuckets = 1;
	while (h->nbuckets < h->max_objects)
		h->nbuckets <<= 1;
	h->bitmap_words = (h->nblocks + 63) / 64;
	h->summary_words = (h->bitmap_words + 63) / 64;
	h->max_holds = h->max_objects;
	h->max_clients = L1_MAX_CLIENTS;
	/* entries are runs of freed objects, so half the records is plenty;
	 * beyond, freed records stay DIRTY (metadata stays under 0.5%) */
	h->max_dirty = c->zero_on_free ? h->max_objects / 2 : 0;
	uint64_t at = L1_HDR_SIZE;
#define PLACE(field, bytes) do { h->field = at; at = round_up(at + (bytes), META_ALIGN); } while (0)
	PLACE(records_off, h->max_objects * L1_REC_SIZE);
	PLACE(layouts_off, h->max_layouts * L1_LAYOUT_SLOT_SIZE);
	PLACE(buckets_off, h->nbuckets * 4);
	PLACE(bitmap_off, h->bitmap_words * 8);
	PLACE(summary_off, h->summary_words * 8);
	PLACE(holds_off, h->max_holds * L1_HOLD_SIZE);
	PLACE(slots_off, h->max_objects * 4);
	PLACE(clients_off, h->max_clients * L1_CLIENT_SIZE);
	PLACE(dirty_off, h->max_dirty * L1_DIRTY_SIZE);
	PLACE(dirty_stack_off, h->max_dirty * 4);
#undef PLACE
	h->data_off = round_up(at, unit);
	h->file_size = h->data_off + h->data_size;
	h->lazy = c->lazy ? 1 : 0;
	h->zero_on_free = c->zero_on_free ? 1 : 0;
	h->mode = c->mode ? c->mode : 0600;
}

static void point_regions(struct l1_arena *a)
{
	struct l1_hdr *h = a->h;
	a->recs = (struct l1_rec *)(void *)(a->base + h->records_off);
	a->layouts = (struct l1_layout_slot *)(void *)(a->base + h->layouts_off);
	a->buckets = (uint32_t *)(void *)(a->base + h->buckets_off);
	a->bitmap = (uint64_t *)(void *)(a->base + h->bitmap_off);
	a->summary = (uint64_t *)(void *)(a->base + h->summary_off);
	a->holds = (struct l1_hold_ent *)(void *)(a->base + h->holds_off);
	a->slots = (uint32_t *)(void *)(a->base + h->slots_off);
	a->clients = (struct l1_client *)(void *)(a->base + h->clients_off);
	a->dirty = h->max_dirty ? (struct l1_dirty_ent *)(void *)(a->base + h->dirty_off) : NULL;
	a->dirty_stack = (uint32_t *)(void *)(a->base + h->dirty_stack_off);
}

/* Formats the mapped file: everything but the magic, which comes last. */
static int format_pool(struct l1_arena *a, const struct l1_hdr *plan, uint64_t committed)
{
	struct l1_hdr *h = a->h;
	memcpy(h, plan, sizeof *h);
	h->magic = 0;
	h->pool_id = l1__random64();
	h->create_ns = l1__now_ns();
	point_regions(a);
	int r = l1__lock_init(h);
	if (r)
		return l1__err(r, "cannot initialise the pool lock: %s", strerror(-r));
	for (uint64_t s = h->max_objects; s-- > 0;)
		a->slots[h->slot_top++] = (uint32_t)s;
	for (uint64_t i = h->max_holds; i-- > 0;) {
		a->holds[i].next = (uint32_t)h->hold_free;
		h->hold_free = i + 1;
	}
	for (uint64_t i = h->max_dirty; i-- > 0;)
		a->dirty_stack[h->dirty_top++] = (uint32_t)i;
	atomic_store(&h->nobj[L1_STATE_FREE], h->max_objects);
	atomic_store(&h->committed, committed);
	snprintf(h->grow_reason, sizeof h->grow_reason, "committed %llu of %llu MiB",
		 (unsigned long long)(committed >> 20), (unsigned long long)(h->data_size >> 20));
	__atomic_store_n(&h->magic, L1_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* The pool path: as given, else $L1ARENA_PATH, else the default, which
 * moves to the first hugetlbfs in /proc/mounts when /dev/hugepages is not
 * one. */
static const char *resolve_path(const char *p, char *buf, size_t len)
{
	char mnt[L1_PATH_MAX];
	uint64_t ps;
	int huge = 0;
	if (p)
		return p;
	p = getenv("L1ARENA_PATH");
	if (p && *p)
		return p;
	if (l1__backing_statfs("/dev/hugepages", &ps, &huge) == 0 && huge)
		return L1_DEFAULT_PATH;
	if (l1__find_hugetlbfs(0, mnt, sizeof mnt) == 0) {
		snprintf(buf, len, "%.200s/l1arena", mnt);
		return buf;
	}
	return L1_DEFAULT_PATH;
}

static struct l1_arena *handle_new(const char *path)
{
	struct l1_arena *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->fd = -1;
	a->client_idx = UINT32_MAX;
	a->cache_layout_id = UINT32_MAX;
	snprintf(a->path, sizeof a->path, "%s", path);
	pthread_mutex_init(&a->local, NULL);
	l1__guard_init(a);
	l1__proc_start(a->pid, &a->start);
	l1__handle_register(a);
	return a;
}

static void handle_free(struct l1_arena *a)
{
	l1__view_release_all(a);
	l1__handle_unregister(a);
	if (a->base)
		munmap(a->base, a->map_size);
	if (a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->local);
	free(a->fin);
	free(a);
}

/* Maps the file at an address that is a multiple of align (the block
 * size), so that objects (at block multiples from the file start) are
 * aligned in memory too.  The kernel aligns a hugetlbfs mapping to its page
 * only, a /dev/shm one to 4 KiB: for a larger block, reserve align bytes
 * more of address space, place the file inside at an aligned address, and
 * give back the rest. */
static int map_file(struct l1_arena *a, uint64_t size, int populate, uint64_t align,
		    uint32_t backing, uint64_t hugepage_size)
{
	int prot = PROT_READ | (a->readonly ? 0 : PROT_WRITE);
	int flags = MAP_SHARED | MAP_NORESERVE | (populate ? MAP_POPULATE : 0);
	uint64_t page = backing == L1_BACKING_HUGETLBFS ? hugepage_size
							: (uint64_t)sysconf(_SC_PAGESIZE);
	char *hint = NULL, *res = MAP_FAILED;
	if (align > page) {             /* both powers of two: align is a multiple */
		res = mmap(NULL, size + align, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (res == MAP_FAILED)
			return l1__err(-errno, "cannot reserve %llu bytes of address space for "
				       "%s: %s", (unsigned long long)(size + align), a->path,
				       strerror(errno));
		hint = (char *)(((uintptr_t)res + align - 1) & ~(uintptr_t)(align - 1));
		flags |= MAP_FIXED;
	}
	void *p = mmap(hint, size, prot, flags, a->fd, 0);
	int err = errno;
	if (res != MAP_FAILED) {
		if (p == MAP_FAILED) {
			munmap(res, size + align);
		} else {
			if (hint > res)
				munmap(res, (size_t)(hint - res));
			if (res + size + align > hint + size)
				munmap(hint + size, (size_t)(res + size + align - (hint + size)));
		}
	}
	if (p == MAP_FAILED)
		return l1__err(-err, "cannot map %s (%llu bytes): %s", a->path,
			       (unsigned long long)size, strerror(err));
	a->base = p;
	a->map_size = size;
	a->h = p;
	return 0;
}

/* ---- client slot, zeroing, pinning ------------------------------------- */

/* Drops the handle's holds (retiring what they kept); the slot itself is
 * freed only after the engine stopped (l1_arena_close), so that nobody
 * takes over extents this process may still be writing. */
static void client_drop(struct l1_arena *a)
{
	uint32_t rel[64], nrel, nq = 0;
	struct l1_zero_extent q[L1_ZQ_MAX];
	if (a->client_idx == UINT32_MAX || l1__lock(a))
		return;
	do {
		l1__holds_drop_client(a, a->client_tag, rel, &nrel, 64);
		for (uint32_t i = 0; i < nrel; i++)
			if (atomic_load(&a->recs[rel[i]].state) == L1_STATE_DOOMED)
				l1__rec_retire(a, rel[i], q, &nq);
	} while (nrel == 64);
	l1__zero_queue(a, q, nq);
	l1__unlock(a);
}

void l1__client_refresh(struct l1_arena *a)
{
	if (a->client_idx == UINT32_MAX)
		return;
	struct l1_client *c = &a->clients[a->client_idx];
	if (a->zero)
		snprintf(c->zero_method, sizeof c->zero_method, "%s",
			 l1_zero_method_name(a->zero));
	if (a->pin_mode == L1_PIN_OFF) {
		c->pin_status = L1_PIN_NONE;
		snprintf(c->pin_reason, sizeof c->pin_reason,
			 "not asked: the process attached with pin = L1_PIN_OFF");
	} else if (!a->pin) {
		c->pin_status = L1_PIN_DEFERRED;
		snprintf(c->pin_reason, sizeof c->pin_reason,
			 "L1_PIN_DEFER: registers at the first allocate or hold");
	} else {
		c->pin_status = l1_pin_status(a->pin);
		c->pinned_bytes = l1_pin_bytes(a->pin);
		snprintf(c->pin_reason, sizeof c->pin_reason, "%s", l1_pin_reason(a->pin));
	}
}

/* Registers every committed step not yet handed to the pin module. */
void l1__pin_sync(struct l1_arena *a)
{
	struct l1_hdr *h = a->h;
	pthread_mutex_lock(&a->local);
	if (a->pin_mode == L1_PIN_OFF)
		goto out;
	if (!a->pin && l1_pin_open(a->pin_mode, a->pin_mapped, &a->pin) < 0)
		a->pin = NULL;
	if (!a->pin) {
		a->pin_mode = L1_PIN_OFF;
		goto out;
	}
	uint64_t committed = atomic_load_explicit(&h->committed, memory_order_acquire);
	while (a->pinned_upto < committed) {
		uint64_t len = h->grow_step;
		if (len > committed - a->pinned_upto)
			len = committed - a->pinned_upto;
		l1_pin_chunk(a->pin, a->base + h->data_off + a->pinned_upto, len);
		__atomic_store_n(&a->pinned_upto, a->pinned_upto + len, __ATOMIC_RELAXED);
	}
out:
	l1__client_refresh(a);
	pthread_mutex_unlock(&a->local);
}

static int attach(struct l1_arena *a, int32_t pin, int32_t mapped, int32_t zero_method,
		  int no_client)
{
	struct stat st;
	point_regions(a);
	a->pool_gid = fstat(a->fd, &st) == 0 ? (uint32_t)st.st_gid : a->gid;
	if (a->readonly)
		return 0;
	int r;
	a->fin = calloc(L1_FIN_CAP, sizeof *a->fin);
	if (!a->fin)
		return l1__err(-ENOMEM, "out of process memory for the zeroing engine");
	struct l1_zero_opts zo = { .method = zero_method, .idle = l1__zero_idle,
				   .still_mine = l1__zero_still_mine };
	r = l1_zero_start(&zo, l1__zero_done, a, &a->zero);
	if (r)
		return l1__err(r, "cannot start the zeroing engine: %s", strerror(-r));
	/* after the engine: the first lock may repair a dead holder's damage,
	 * and the repair hands its dirty extents to this engine */
	r = l1__client_take(a, no_client);
	if (r == -ETIMEDOUT && no_client)
		a->client_pending = 1;  /* a tool (info, gc, memcheck) still answers, naming
					 * the holder; its first alloc takes the slot */
	else if (r)
		return r;
	a->pin_mode = pin;
	a->pin_mapped = mapped;
	if (pin == L1_PIN_AUTO)
		l1__pin_sync(a);
	else
		l1__client_refresh(a);
	return 0;
}

/* ---- create / open / close / destroy ----------------------------------- */

/* ---- atomic create ------------------------------------------------------
 * A pool is formatted under a temporary name beside its path, DIR/.BASE.l1new.
 * PID.RANDOM, whose creator holds an exclusive flock on it, and renamed onto
 * the path only when complete: a create killed part-way leaves no file at the
 * path, and its temporary file (which may hold huge pages) is removed by the
 * next create of that path (a temporary file nobody holds a flock on, whose
 * pid is gone, is stale).  Replacing a pool (force) renames over it, so the
 * old pool stays until the new one is whole; a new one that does not fit
 * leaves the old one as it was. */

#define TMP_TAG ".l1new."

static void split_path(const char *path, char *dir, size_t dlen, char *base, size_t blen)
{
	char d[L1_PATH_MAX], b[L1_PATH_MAX];
	snprintf(d, sizeof d, "%s", path);
	snprintf(b, sizeof b, "%s", path);
	snprintf(dir, dlen, "%s", dirname(d));
	snprintf(base, blen, "%s", basename(b));
}

/* Removes the temporary files that creates of this path left when killed. */
static void clean_stale(const char *path)
{
	char dir[L1_PATH_MAX], base[L1_PATH_MAX], prefix[L1_PATH_MAX + 16], full[2 * L1_PATH_MAX];
	split_path(path, dir, sizeof dir, base, sizeof base);
	snprintf(prefix, sizeof prefix, ".%.200s" TMP_TAG, base);
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		size_t n = strlen(prefix);
		if (strncmp(e->d_name, prefix, n))
			continue;
		long pid = strtol(e->d_name + n, NULL, 10);
		if (pid > 0 && kill((pid_t)pid, 0) == 0)
			continue;       /* its creator may still be at it */
		snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
		int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlink(full);
		close(fd);
	}
	closedir(d);
}

/* How many live processes are attached to the pool at path (0 if it is not
 * a pool this library can read); *first: one of them. */
static uint32_t live_clients(const char *path, int32_t *first)
{
	struct l1_open_opts o;
	struct l1_arena *old;
	uint32_t live = 0;
	l1_open_opts_init(&o);
	o.readonly = 1;
	if (l1_arena_open(path, &o, &old))
		return 0;
	uint32_t max = (uint32_t)old->h->max_clients;
	struct l1_client_info *ci = calloc(max, sizeof *ci);
	int n = ci ? l1_arena_clients(old, ci, max) : 0;
	for (int i = 0; i < n && (uint32_t)i < max; i++)
		if (ci[i].alive && !live++)
			*first = ci[i].pid;
	free(ci);
	l1_arena_close(old);
	return live;
}

/* May a pool be made at a->path?  Then the temporary file, open in a->fd
 * (flocked), its name in tmp. */
static int create_file(struct l1_arena *a, const struct l1_config *c, char *tmp, size_t len)
{
	struct stat st;
	int32_t first = 0;
	uint32_t live;
	if (lstat(a->path, &st) == 0) {
		if (a->moved)
			return l1__err(-EEXIST, "the pool was to move to %s (the /dev/shm "
				       "fallback), but a file is there already: the fallback never "
				       "replaces a file it was not given; name that path to replace "
				       "it", a->path);
		if (!c->force)
			return l1__err(-EEXIST, "a pool already exists at %s: attach to it, or "
				       "destroy it first (`l1ctl destroy`), or create with force",
				       a->path);
		if (c->force < 2 && (live = live_clients(a->path, &first)))
			return l1__err(-EBUSY, "%u process(es) still attached to the pool at %s "
				       "(pid %d first): stop them, or force twice (--force --force) "
				       "to replace it anyway (they keep the old pool until they "
				       "detach)", live, a->path, (int)first);
	}
	clean_stale(a->path);
	char dir[L1_PATH_MAX], base[L1_PATH_MAX];
	split_path(a->path, dir, sizeof dir, base, sizeof base);
	snprintf(tmp, len, "%s/.%.200s" TMP_TAG "%d.%08llx", dir, base, (int)a->pid,
		 (unsigned long long)(l1__random64() & 0xffffffffull));
	a->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, c->mode ? c->mode : 0600);
	if (a->fd < 0)
		return l1__err(-errno, "cannot create %s: %s", tmp, strerror(errno));
	flock(a->fd, LOCK_EX);
	fchmod(a->fd, c->mode ? c->mode : 0600);
	return 0;
}

/* The shm fallback: the pool moves to /dev/shm/<basename>, which create
 * then makes with O_EXCL whatever `force` says (force replaces only the path
 * it was given), and l1_arena_path() says where it went. */
static void shm_path(struct l1_arena *a)
{
	char base[L1_PATH_MAX];
	snprintf(base, sizeof base, "%s", a->path);
	snprintf(a->path, sizeof a->path, "/dev/shm/%.200s", basename(base));
	a->moved = 1;
}

/* The finished pool takes its name: over the old one with force, else only
 * if the path is still free. */
static int publish_file(struct l1_arena *a, const struct l1_config *c, const char *tmp)
{
	if (c->force && !a->moved) {
		if (rename(tmp, a->path) == 0)
			return 0;
	} else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, a->path, RENAME_NOREPLACE) == 0) {
		return 0;
	} else if (errno == EINVAL || errno == ENOSYS) {
		/* no RENAME_NOREPLACE here: a hard link is just as exclusive */
		if (link(tmp, a->path) == 0) {
			unlink(tmp);
			return 0;
		}
	}
	if (errno == EEXIST)
		return l1__err(-EEXIST, "a pool appeared at %s while this one was made: "
			       "attach to it, or create with force", a->path);
	return l1__err(-errno, "cannot rename %s to %s: %s", tmp, a->path, strerror(errno));
}

/* Where the pool goes: hugetlbfs at the path; with allow_shm only, the same
 * path on another file system (tmpfs, say) or, when its directory does not
 * exist, /dev/shm/<basename> (shm_path). */
static int choose_backing(struct l1_arena *a, const struct l1_config *c, uint64_t *hp,
			  uint32_t *backing, char *why, size_t whylen)
{
	char dir[L1_PATH_MAX];
	uint64_t ps;
	int huge = 0;
	snprintf(dir, sizeof dir, "%s", a->path);
	int r = l1__backing_statfs(dirname(dir), &ps, &huge);
	if (r == 0 && huge) {
		if (c->hugepage_size && c->hugepage_size != ps)
			return l1__err(-EINVAL, "config.hugepage_size is %llu but %s is a hugetlbfs "
				       "of %llu-byte pages", (unsigned long long)c->hugepage_size,
				       a->path, (unsigned long long)ps);
		*hp = ps;
		*backing = L1_BACKING_HUGETLBFS;
		return 0;
	}
	snprintf(why, whylen, "%s is not on hugetlbfs%s", a->path,
		 r ? " (its directory does not exist)" : "");
	if (!c->allow_shm)
		return l1__err(-ENODEV, "%s: mount one with `l1ctl setup` (as root), or allow the "
			       "/dev/shm fallback (allow_shm / --allow-shm)", why);
	if (r != 0)     /* no such directory: the pool goes to /dev/shm instead */
		shm_path(a);
	*hp = 4096;
	*backing = L1_BACKING_SHM;
	return 0;
}

static int create_once(struct l1_arena *a, const struct l1_config *c, uint64_t hp,
		       uint32_t backing)
{
	struct l1_hdr plan;
	plan_layout(&plan, c, backing == L1_BACKING_HUGETLBFS ? hp : L1_HUGEPAGE_2M);
	plan.backing = backing;
	uint64_t committed = plan.data_size;
	if (c->lazy) {
		uint64_t init = c->init_size_bytes ? c->init_size_bytes : L1_DEFAULT_LAZY_INIT;
		init = init < plan.data_size ? init : plan.data_size;
		committed = round_up(init, plan.grow_step);
		committed = committed < plan.data_size ? committed : plan.data_size;
	}
	char tmp[2 * L1_PATH_MAX];
	int r = create_file(a, c, tmp, sizeof tmp);
	if (r)
		return r;
	if (ftruncate(a->fd, (off_t)plan.file_size) < 0) {
		r = l1__err(-errno, "cannot size %s to %llu bytes: %s", a->path,
			    (unsigned long long)plan.file_size, strerror(errno));
		goto fail;
	}
	r = l1__backing_commit(a->fd, 0, plan.data_off + committed);
	if (r) {
		r = l1__err(r, "cannot commit %llu MiB for the pool at %s: %s%s%s",
			    (unsigned long long)((plan.data_off + committed) >> 20), a->path,
			    strerror(-r),
			    r == -ENOSPC && backing == L1_BACKING_HUGETLBFS
				    ? " (not enough free huge pages: run `l1ctl setup --hugepages N`)"
				    : "",
			    c->force ? "; the pool there is left as it was" : "");
		goto fail;
	}
	if ((r = map_file(a, plan.file_size, !c->lazy, plan.block_size, backing,
			    plan.hugepage_size)))
		goto fail;
	if ((r = format_pool(a, &plan, committed)))
		goto fail;
	if ((r = publish_file(a, c, tmp)))
		goto fail;
	return 0;
fail:
	if (a->base) {
		munmap(a->base, a->map_size);
		a->base = NULL;
	}
	close(a->fd);
	a->fd = -1;
	unlink(tmp);
	return r;
}

int l1_arena_create(const struct l1_config *cin, struct l1_arena **out)
{
	char why[L1_PATH_MAX + 64] = "";
	uint64_t hp = 0;
	uint32_t backing = 0;
	if (!out)
		return l1__err(-EINVAL, "out is NULL");
	*out = NULL;
	int r = l1_config_validate(cin);
	if (r)
		return r;
	struct l1_config c = *cin;
	char pbuf[L1_PATH_MAX];
	struct l1_arena *a = handle_new(resolve_path(c.path, pbuf, sizeof pbuf));
	if (!a)
		return l1__err(-ENOMEM, "out of process memory");
	if ((r = choose_backing(a, &c, &hp, &backing, why, sizeof why)))
		goto fail;
	r = create_once(a, &c, hp, backing);
	if (r == -ENOSPC && backing == L1_BACKING_HUGETLBFS && c.allow_shm) {
		shm_path(a);
		r = create_once(a, &c, 4096, L1_BACKING_SHM);
	}
	if (r)
		goto fail;
	if ((r = attach(a, c.pin, c.pin_mapped, c.zero_method, 0)))
		goto fail;
	*out = a;
	return 0;
fail:
	l1_arena_close(a);
	return r;
}

/* Opens exactly the path given: never another file in its place. */
static int open_file(struct l1_arena *a)
{
	a->fd = open(a->path, (a->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (a->fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return l1__err(-ENOENT, "no pool at %s: create one with `l1ctl create`",
				       a->path);
		return l1__err(-e, "cannot open %s %s: %s%s", a->path,
			       a->readonly ? "for reading" : "read-write", strerror(e),
			       e != EACCES ? "" : a->readonly
				       ? " (reading needs read permission on the pool file)"
				       : " (read-write needs write permission on the pool file; "
					 "a member of its group can attach read-only)");
	}
	return 0;
}

int l1_arena_open(const char *path, const struct l1_open_opts *oin,
		  struct l1_arena **out)
{
	struct l1_open_opts o;
	struct stat st;
	int r;
	if (!out)
		return l1__err(-EINVAL, "out is NULL");
	*out = NULL;
	if (oin)
		o = *oin;
	else
		l1_open_opts_init(&o);
	char pbuf[L1_PATH_MAX];
	path = resolve_path(path, pbuf, sizeof pbuf);
	if (strlen(path) >= L1_PATH_MAX)
		return l1__err(-EINVAL, "path longer than %d bytes", L1_PATH_MAX - 1);
	struct l1_arena *a = handle_new(path);
	if (!a)
		return l1__err(-ENOMEM, "out of process memory");
	a->readonly = o.readonly != 0;
	if ((r = open_file(a)))
		goto fail;
	if (fstat(a->fd, &st) < 0) {
		r = l1__err(-errno, "cannot stat %s", a->path);
		goto fail;
	}
	if ((uint64_t)st.st_size < L1_HDR_SIZE) {
		r = l1__err(-EBADMSG, "%s is %lld bytes: not an l1arena pool", a->path,
			    (long long)st.st_size);
		goto fail;
	}
	/* the creator stores the magic last: give a pool being made a moment */
	struct l1_hdr hdr;
	for (int i = 0; i < 200; i++) {
		if (pread(a->fd, &hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
			r = l1__err(-EBADMSG, "cannot read the header of %s", a->path);
			goto fail;
		}
		if (hdr.magic)
			break;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	if ((r = l1__validate_header(&hdr, (uint64_t)st.st_size)))
		goto fail_msg;
	if ((r = map_file(a, hdr.file_size, !hdr.lazy, hdr.block_size, hdr.backing,
			    hdr.hugepage_size)))
		goto fail;
	if ((r = l1__validate_header(a->h, (uint64_t)st.st_size)))
		goto fail_msg;
	if ((r = attach(a, o.pin, o.pin_mapped, o.zero_method, o.no_client)))
		goto fail;
	*out = a;
	return 0;
fail_msg: {
	char msg[512];
	snprintf(msg, sizeof msg, "%s", l1_last_error());
	l1__err(r, "%s: %s", a->path, msg);
}
fail:
	l1_arena_close(a);
	return r;
}

void l1_arena_close(struct l1_arena *a)
{
	if (!a)
		return;
	if (a->pid != getpid()) {
		/* a handle inherited across fork: its engine thread and client slot
		 * belong to the parent; only this process's mapping goes */
		a->zero = NULL;
		a->pin = NULL;
		a->client_idx = UINT32_MAX;
	} else if (a->h && a->recs) {
		client_drop(a);         /* may free held objects: before the engine stops */
		l1_zero_stop(a->zero);  /* everything queued reaches the ring ... */
		a->zero = NULL;
		l1__fin_release_now(a); /* ... and is released here */
		if (a->client_idx != UINT32_MAX && l1__lock(a) == 0) {
			l1__client_release(a);  /* now nothing of ours writes */
			l1__unlock(a);
		}
		l1_pin_close(a->pin);
		a->pin = NULL;
	}
	handle_free(a);
}

int l1_arena_destroy(const char *path, int force)
{
	struct l1_open_opts o;
	struct l1_arena *a;
	char real[L1_PATH_MAX];
	char pbuf[L1_PATH_MAX];
	l1_open_opts_init(&o);
	o.readonly = 1;
	path = resolve_path(path, pbuf, sizeof pbuf);
	int r = l1_arena_open(path, &o, &a);
	if (r == -ENOENT)
		return r;
	if (r) {
		if (!force) {
			char why[512];
			snprintf(why, sizeof why, "%s", l1_last_error());
			return l1__err(r, "%s; refusing to remove it (use force)", why);
		}
		return unlink(path) < 0 ? l1__err(-errno, "cannot remove %s: %s", path,
						  strerror(errno)) : 0;
	}
	snprintf(real, sizeof real, "%s", a->path);
	uint32_t live = 0;
	int32_t first = 0;
	for (uint64_t i = 0; i < a->h->max_clients; i++) {
		struct l1_client *c = &a->clients[i];
		if (l1__live_slot(a, NULL, (uint32_t)i)) {
			if (!live++)
				first = c->pid;
		}
	}
	l1_arena_close(a);
	if (live && !force)
		return l1__err(-EBUSY, "%u process(es) still attached to %s (pid %d first): "
			       "detach them or destroy with force", live, real, (int)first);
	if (unlink(real) < 0)
		return l1__err(-errno, "cannot remove %s: %s", real, strerror(errno));
	clean_stale(real);      /* and what killed creates of it left */
	return 0;
}

/* ---- usage, vm space, clients ------------------------------------------ */

void l1_get_memory_usage(struct l1_arena *a, uint64_t *used, uint64_t *total)
{
	if (l1__handle_check(a))       /* void: refused with the sentence only */
		return;
	if (used)
		*used = atomic_load_explicit(&a->h->used_bytes, memory_order_relaxed);
	if (total)
		*total = l1__pool_size(a->h);
}

int l1_arena_usage(struct l1_arena *a, struct l1_usage *u)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!u)
		return l1__err(-EINVAL, "NULL argument");
	struct l1_hdr *h = a->h;
	memset(u, 0, sizeof *u);
	u->used_bytes = atomic_load(&h->used_bytes);
	u->total_bytes = l1__pool_size(h);
	u->committed_bytes = atomic_load(&h->committed);
	u->dirty_bytes = atomic_load(&h->dirty_bytes);
	u->free_bytes = u->total_bytes > u->used_bytes + u->dirty_bytes
				? u->total_bytes - u->used_bytes - u->dirty_bytes : 0;
	for (int i = 0; i < 5; i++)
		u->objects[i] = atomic_load(&h->nobj[i]);
	/* freed objects awaiting zeroing: DIRTY records and dirty extents */
	u->objects[L1_STATE_DIRTY] += atomic_load(&h->dirty_extents);
	u->max_objects = h->max_objects;
	u->holds = atomic_load(&h->nholds);
	u->clients = atomic_load(&h->nclients);
	u->allocs = atomic_load(&h->allocs);
	u->frees = atomic_load(&h->frees);
	u->ooms = atomic_load(&h->ooms);
	u->repairs = atomic_load(&h->repairs);
	u->zeroed_bytes = atomic_load(&h->zeroed_bytes);
	u->zero_busy_ns = atomic_load(&h->zero_busy_ns);
	u->hugepage_size = h->backing == L1_BACKING_SHM ? 4096 : h->hugepage_size;
	u->grow_step_bytes = h->grow_step;
	u->align_bytes = h->block_size;
	u->metadata_bytes = h->data_off;
	u->lazy = (int32_t)h->lazy;
	u->zero_on_free = (int32_t)h->zero_on_free;
	u->grow_failed = (int32_t)atomic_load(&h->grow_failed);
	snprintf(u->backing, sizeof u->backing, "%s",
		 h->backing == L1_BACKING_SHM ? "shm" : "hugetlbfs");
	snprintf(u->zero_method, sizeof u->zero_method, "%s",
		 !h->zero_on_free ? "off" : a->zero ? l1_zero_method_name(a->zero)
						    : "none in this process");
	if (a->readonly) {      /* no lock: the reason as it reads now */
		memcpy(u->grow_reason, h->grow_reason, sizeof u->grow_reason);
		u->grow_reason[sizeof u->grow_reason - 1] = 0;
	} else if (l1__lock_within(a, 100) == 0) {
		snprintf(u->grow_reason, sizeof u->grow_reason, "%s", h->grow_reason);
		u->largest_free_bytes = l1__bm_largest_free(a, l1__blocks_usable(h));
		l1__unlock(a);
	} else {
		snprintf(u->grow_reason, sizeof u->grow_reason, "(not read: %s)", l1_last_error());
	}
	return 0;
}

int l1_arena_health(struct l1_arena *a, struct l1_health *o)
{
	const char *state;
	if (!a || !o)
		return l1__err(-EINVAL, "NULL argument");
	memset(o, 0, sizeof *o);
	l1__lock_holder(a, &o->lock_pid, &o->lock_tid, &state, &o->lock_held_ns);
	snprintf(o->lock_state, sizeof o->lock_state, "%s", state);
	o->lock_wait_ms = l1__lock_bound_ms();
	o->lock_timeouts = atomic_load(&a->h->lock_timeouts);
	o->grow_failures = atomic_load(&a->h->grow_failures);
	o->grow_returned_bytes = atomic_load(&a->h->grow_returned);
	char who[96];
	l1__lock_describe(o->lock_pid, o->lock_tid, o->lock_state, o->lock_held_ns, who,
			  sizeof who);
	snprintf(o->lock_text, sizeof o->lock_text, "%.72s; waits give up after %llu ms; %llu "
		 "gave up so far", who, (unsigned long long)o->lock_wait_ms,
		 (unsigned long long)o->lock_timeouts);
	snprintf(o->grow_text, sizeof o->grow_text, "%llu failed growth(s) gave back %llu MiB "
		 "of pages (%llu bytes)", (unsigned long long)o->grow_failures,
		 (unsigned long long)(o->grow_returned_bytes >> 20),
		 (unsigned long long)o->grow_returned_bytes);
	return 0;
}

int l1_get_vm_space(struct l1_arena *a, struct l1_vm_space *v)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!v)
		return l1__err(-EINVAL, "NULL argument");
	l1__pin_catch_up(a);
	memset(v, 0, sizeof *v);
	v->base = a->base;
	v->size = a->map_size;
	v->fd = a->fd;
	v->page_size = a->h->backing == L1_BACKING_SHM ? 4096 : a->h->hugepage_size;
	v->data_offset = a->h->data_off;
	v->data_size = l1__pool_size(a->h);
	v->committed = atomic_load(&a->h->committed);
	v->pool_id = a->h->pool_id;
	pthread_mutex_lock(&a->local);
	v->pinned = a->pin ? (uint32_t)l1_pin_ranges(a->pin, a->base, NULL, 0) : 0;
	pthread_mutex_unlock(&a->local);
	snprintf(v->path, sizeof v->path, "%s", a->path);
	return 0;
}

int l1_arena_pinned_ranges(struct l1_arena *a, struct l1_range *out, uint32_t max)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	l1__pin_catch_up(a);
	pthread_mutex_lock(&a->local);
	int n = a->pin ? l1_pin_ranges(a->pin, a->base, out, max) : 0;
	pthread_mutex_unlock(&a->local);
	return n;
}

int l1_arena_clients(struct l1_arena *a, struct l1_client_info *out, uint32_t max)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!out && max)
		return l1__err(-EINVAL, "NULL argument");
	uint32_t n = 0;
	for (uint64_t i = 0; i < a->h->max_clients && n < max; i++) {
		struct l1_client c = a->clients[i];
		if (c.state != L1_CLIENT_LIVE)
			continue;
		struct l1_client_info *o = &out[n++];
		memset(o, 0, sizeof *o);
		o->pid = c.pid;
		o->pin_status = c.pin_status;
		o->start_time = c.start;
		o->attach_ns = c.attach_ns;
		o->pinned_bytes = c.pinned_bytes;
		o->holds = c.holds;
		o->alive = (uint32_t)l1__live_slot(a, NULL, (uint32_t)i);
		memcpy(o->pin_reason, c.pin_reason, sizeof o->pin_reason);
		o->pin_reason[sizeof o->pin_reason - 1] = 0;
		memcpy(o->zero_method, c.zero_method, sizeof o->zero_method);
		o->zero_method[sizeof o->zero_method - 1] = 0;
	}
	return (int)n;
}

int l1_arena_client_owners(struct l1_arena *a, struct l1_client_owner *out, uint32_t max)
{
	if (!a || (!out && max))
		return l1__err(-EINVAL, "NULL argument");
	uint32_t n = 0;
	for (uint64_t i = 0; i < a->h->max_clients && n < max; i++) {
		const struct l1_client *c = &a->clients[i];
		if (c->state != L1_CLIENT_LIVE)
			continue;
		struct l1_client_owner *o = &out[n++];
		memset(o, 0, sizeof *o);
		o->pid = c->pid;
		o->uid = c->uid;
		o->start_time = c->start;
		memcpy(o->comm, c->comm, sizeof o->comm);
		o->comm[sizeof o->comm - 1] = 0;
	}
	return (int)n;
}

int l1_arena_stats(struct l1_arena *a, struct l1_stats *s)
{
	if (!a || !s)
		return l1__err(-EINVAL, "NULL argument");
	struct l1_hdr *h = a->h;
	memset(s, 0, sizeof *s);
	s->zero_waits = atomic_load(&h->zero_waits);
	s->zero_wait_ns = atomic_load(&h->zero_wait_ns);
	s->gc_objects_reclaimed = atomic_load(&h->gc_objects);
	s->gc_holds_dropped = atomic_load(&h->gc_holds);
	s->gc_clients_dropped = atomic_load(&h->gc_clients);
	s->gc_dirty_requeued = atomic_load(&h->gc_requeued);
	/* DOOMED records are few; a relaxed walk is enough for a figure */
	if (atomic_load(&h->nobj[L1_STATE_DOOMED]))
		for (uint64_t i = 0; i < h->max_objects; i++)
			if (atomic_load_explicit(&a->recs[i].state, memory_order_relaxed) ==
			    L1_STATE_DOOMED) {
				s->doomed_objects++;
				s->doomed_bytes += a->recs[i].size;
			}
	return 0;
}
