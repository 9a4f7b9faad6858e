/*
 * client.c - the client table and liveness.  Each read-write handle takes a
 * slot of the client table and, for as long as it is attached, holds an
 * open-file-description lock (F_OFD_SETLK) on the first byte of that slot's
 * entry in the pool file, through the handle's own open of the file.  The
 * kernel drops that lock when the last reference to the open file
 * description goes: when the handle closes, or when the process is gone
 * entirely (all its threads, its mapping of the pool, its io_uring workers).
 * So "is client S alive" is F_OFD_GETLK on that byte, from any process in
 * any PID or mount namespace, whatever /proc shows; a pid is never asked
 * about.  Owners (records, holds, dirty extents) are named by a client tag:
 * slot and the slot's generation, bumped each time the slot is taken, so a
 * reused slot is not mistaken for its previous user.  A tag is alive when
 * its slot is taken, with that generation, and its byte is locked.
 *
 * Besides life, a lease: a client's zeroing engine stamps beat_ms while it
 * works; dirty extents of a client whose beat is older than L1_LEASE_MS
 * (stopped by SIGSTOP, a debugger, a frozen cgroup) may be taken over by
 * another process's engine (gc.c).
 *
 * fork: the child inherits the handle's file descriptor and mapping, both
 * references to the parent's open file description, so the parent's lock
 * would live as long as the child.  An atfork handler gives each handle in
 * the child a fresh open of the same file (mapped over the old mapping at
 * the same address), so the child holds no client's lock.
 *
 * Everything that reads or writes the table runs under the pool lock,
 * except beat_ms (atomic; own slot only) and the lock byte itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "internal.h"

/* This process's pid, kept here (set at the first handle, again in each
 * fork child) so that the hot paths need no getpid() system call. */
static _Atomic pid_t self_pid;

static int own_handle(const struct l1_arena *a)
{
	return a->pid == atomic_load_explicit(&self_pid, memory_order_relaxed);
}

static off_t lock_byte(const struct l1_arena *a, uint32_t slot)
{
	return (off_t)(a->h->clients_off + (uint64_t)slot * L1_CLIENT_SIZE);
}

static int ofd_lock(int fd, off_t at, short type, int cmd, struct flock *out)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = at, .l_len = 1 };
	int r = fcntl(fd, cmd, &fl);
	if (out)
		*out = fl;
	return r < 0 ? -errno : 0;
}

uint32_t l1__now_ms32(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

uint32_t l1__client_tag(const struct l1_arena *a)
{
	return a->client_idx == UINT32_MAX ? 0 : a->client_tag;
}

/* Is the byte of slot locked by someone else?  1 when unsure: the pool
 * never calls a live client dead. */
static int slot_locked(struct l1_arena *a, uint32_t slot)
{
	struct flock fl;
	if (a->client_idx == slot && own_handle(a))
		return 1;       /* our own lock: GETLK through our own open says free */
	if (ofd_lock(a->fd, lock_byte(a, slot), F_WRLCK, F_OFD_GETLK, &fl) < 0)
		return 1;
	return fl.l_type != F_UNLCK;
}

void l1__live_init(struct l1_live *lv)
{
	memset(lv, 0, sizeof *lv);
}

/* Under the lock: is the slot's current user alive (asked once per pass). */
int l1__live_slot(struct l1_arena *a, struct l1_live *lv, uint32_t slot)
{
	if (slot >= a->h->max_clients || a->clients[slot].state == L1_CLIENT_FREE)
		return 0;
	if (!lv)
		return slot_locked(a, slot);
	if (!lv->known[slot])
		lv->known[slot] = slot_locked(a, slot) ? 1 : 2;
	return lv->known[slot] == 1;
}

/* Under the lock: the slot a tag names, if that use of it is current. */
int l1__tag_current(const struct l1_arena *a, uint32_t tag, uint32_t *slot)
{
	uint32_t s = tag & ((1u << L1_CLIENT_BITS) - 1);
	if (!tag || s >= a->h->max_clients || a->clients[s].state == L1_CLIENT_FREE ||
	    a->clients[s].gen != tag >> L1_CLIENT_BITS)
		return 0;
	if (slot)
		*slot = s;
	return 1;
}

int l1__live_tag(struct l1_arena *a, struct l1_live *lv, uint32_t tag)
{
	uint32_t s;
	return l1__tag_current(a, tag, &s) && l1__live_slot(a, lv, s);
}

/* Alive, but its engine showed no sign of life for longer than the lease. */
int l1__tag_stalled(struct l1_arena *a, uint32_t tag)
{
	uint32_t s;
	if (!l1__tag_current(a, tag, &s))
		return 0;
	uint32_t beat = atomic_load_explicit(&a->clients[s].beat_ms, memory_order_relaxed);
	return (uint32_t)(l1__now_ms32() - beat) > L1_LEASE_MS;
}

void l1__client_beat(struct l1_arena *a)
{
	if (a->client_idx != UINT32_MAX && own_handle(a))
		atomic_store_explicit(&a->clients[a->client_idx].beat_ms, l1__now_ms32(),
				      memory_order_relaxed);
}

/* Under the lock: nclients is derived, never counted up and down. */
void l1__clients_recount(struct l1_arena *a)
{
	atomic_store(&a->h->nclients, l1__clients_live(a));
}

uint64_t l1__clients_live(const struct l1_arena *a)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < a->h->max_clients; i++)
		n += a->clients[i].state == L1_CLIENT_LIVE;
	return n;
}

/* Takes a free slot whose byte nobody holds, and locks that byte. */
int l1__client_take(struct l1_arena *a, int anon)
{
	struct l1_hdr *h = a->h;
	uint64_t repairs = atomic_load(&h->repairs);
	int r = l1__lock(a);
	if (r)
		return r;
	r = -EBUSY;
	for (uint64_t i = 0; i < h->max_clients; i++) {
		struct l1_client *c = &a->clients[i];
		if (c->state != L1_CLIENT_FREE)
			continue;
		r = ofd_lock(a->fd, lock_byte(a, (uint32_t)i), a->readonly ? F_RDLCK : F_WRLCK,
			     F_OFD_SETLK, NULL);
		if (r == -EAGAIN || r == -EACCES)
			continue;       /* still held through an inherited open: not free */
		if (r)
			break;
		uint32_t gen = c->gen + 1 > L1_CLIENT_GEN_MAX ? 1 : c->gen + 1;
		memset(c, 0, sizeof *c);
		c->gen = gen;
		c->pid = a->pid;
		c->start = a->start;
		c->attach_ns = l1__now_ns();
		atomic_store(&c->beat_ms, l1__now_ms32());
		c->pin_status = L1_PIN_NONE;
		c->uid = (uint32_t)geteuid();
		if (prctl(PR_GET_NAME, c->comm, 0, 0, 0) != 0)
			c->comm[0] = 0;
		c->comm[sizeof c->comm - 1] = 0;
		c->state = anon ? L1_CLIENT_ANON : L1_CLIENT_LIVE;
		a->client_idx = (uint32_t)i;
		a->client_tag = (uint32_t)i | gen << L1_CLIENT_BITS;
		a->client_anon = anon;
		break;
	}
	l1__clients_recount(a);
	/* a repair inside this lock had no tag yet to give the dead holder's
	 * dirty extents: they are this engine's now */
	if (r == 0 && atomic_load(&h->repairs) != repairs)
		l1__requeue_orphans(a);
	l1__unlock(a);
	if (r == -EBUSY)
		return l1__err(-EBUSY, "client table of %s is full (%llu handles attached): "
			       "close some, or run `l1ctl gc` if they are gone", a->path,
			       (unsigned long long)h->max_clients);
	if (r)
		return l1__err(r, "cannot lock a byte of %s (%s): this file system does not "
			       "support open-file-description locks, which the pool needs to "
			       "tell live clients from dead ones", a->path, strerror(-r));
	return 0;
}

/* Under the lock: frees this handle's slot (its holds dropped already, its
 * engine stopped), then lets go of its byte. */
void l1__client_release(struct l1_arena *a)
{
	if (a->client_idx == UINT32_MAX)
		return;
	a->clients[a->client_idx].state = L1_CLIENT_FREE;
	l1__clients_recount(a);
	ofd_lock(a->fd, lock_byte(a, a->client_idx), F_UNLCK, F_OFD_SETLK, NULL);
	a->client_idx = UINT32_MAX;
	a->client_tag = 0;
}

/* ---- fork ---------------------------------------------------------------- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static struct l1_arena *reg_head;

/* In the child, only async-signal-safe calls: a fresh open of the same file
 * (through /proc/self/fd when there is one, else by path, if it is still the
 * same file), mapped over the inherited mapping, and put in the inherited
 * descriptor's place.  The old open file description, and the parent's
 * lock with it, are then no longer referenced by the child.  If that fails
 * the child keeps the parent's lock alive (its objects are kept longer
 * than needed, never lost). */
static void reopen_in_child(struct l1_arena *a)
{
	char fdpath[32];
	struct stat st0, st1;
	int flags = (a->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	if (a->fd < 0 || !a->base || fstat(a->fd, &st0) < 0)
		return;
	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", a->fd);
	int fd = open(fdpath, flags);
	if (fd < 0)
		fd = open(a->path, flags);
	if (fd < 0)
		return;
	if (fstat(fd, &st1) < 0 || st1.st_ino != st0.st_ino || st1.st_dev != st0.st_dev) {
		close(fd);
		return;
	}
	int prot = PROT_READ | (a->readonly ? 0 : PROT_WRITE);
	void *p = mmap(a->base, a->map_size, prot, MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return;
	}
	dup3(fd, a->fd, O_CLOEXEC);
	close(fd);
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&reg_lock);
}

static void atfork_child(void)
{
	atomic_store(&self_pid, getpid());
	for (struct l1_arena *a = reg_head; a; a = a->reg_next)
		if (a->client_idx != UINT32_MAX)
			reopen_in_child(a);
	pthread_mutex_unlock(&reg_lock);
}

static void reg_init(void)
{
	atomic_store(&self_pid, getpid());
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void l1__handle_register(struct l1_arena *a)
{
	pthread_once(&reg_once, reg_init);
	pthread_mutex_lock(&reg_lock);
	a->reg_next = reg_head;
	reg_head = a;
	pthread_mutex_unlock(&reg_lock);
}

void l1__handle_unregister(struct l1_arena *a)
{
	pthread_mutex_lock(&reg_lock);
	for (struct l1_arena **p = &reg_head; *p; p = &(*p)->reg_next)
		if (*p == a) {
			*p = a->reg_next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}
