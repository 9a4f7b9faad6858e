/*
 * testutil.c - see testutil.h.  No state beyond a per-process path buffer.
 */
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char path_buf[512];
static unsigned path_seq;

const char *l1t_shm_dir(void)
{
	const char *d = getenv("L1_TEST_SHM_DIR");      /* tests/run.sh's, per run */
	if (d && *d)
		return d;
	static char shm[64];
	snprintf(shm, sizeof shm, "/dev/shm/l1test-%d", (int)getuid());
	mkdir(shm, 0700);
	return shm;
}

static const char *test_dir(void)
{
	const char *d = getenv("L1_TEST_DIR");
	if (d && *d)
		return d;
	return l1t_shm_dir();
}

int l1t_on_hugetlbfs(void)
{
	const char *h = getenv("L1_TEST_HUGETLBFS");
	return h && *h == '1';
}

const char *l1t_path(const char *name)
{
	snprintf(path_buf, sizeof path_buf, "%s/%s-%d-%u", test_dir(), name,
		 (int)getpid(), path_seq++);
	unlink(path_buf);
	return path_buf;
}

void l1t_config(struct l1_config *c, const char *name, uint64_t size)
{
	l1_config_init(c);
	c->path = l1t_path(name);
	c->size_bytes = size;
	c->lazy = 0;
	c->pin = L1_PIN_OFF;
	c->allow_shm = !l1t_on_hugetlbfs();
	if (size < (64ull << 20))
		c->grow_step_bytes = size;
}

struct l1_arena *l1t_create(const char *name, uint64_t size)
{
	struct l1_config c;
	struct l1_arena *a = NULL;
	l1t_config(&c, name, size);
	int r = l1_arena_create(&c, &a);
	ck_assert_msg(r == 0, "create %s: %s: %s", c.path, l1_strerror(r),
		      l1_last_error());
	return a;
}

void l1t_destroy(struct l1_arena *a)
{
	char p[512];
	if (!a)
		return;
	snprintf(p, sizeof p, "%s", l1_arena_path(a));
	l1_arena_close(a);
	l1_arena_destroy(p, 1);
}

void l1t_layout_bytes(struct l1_layout *l, uint64_t n)
{
	memset(l, 0, sizeof *l);
	l->ntensors = 1;
	l->t[0].dtype = L1_DTYPE_UINT8;
	l->t[0].ndim = 1;
	l->t[0].shape[0] = n;
}

int l1t_wait(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

void l1t_fill(void *p, uint64_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = mix(seed + i) | 1;
}

int l1t_check(const void *p, uint64_t len, uint64_t seed)
{
	const uint64_t *w = p;
	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i] != (mix(seed + i) | 1))
			return 0;
	return 1;
}

int l1t_is_zero(const void *p, uint64_t len)
{
	const unsigned char *b = p;
	for (uint64_t i = 0; i < len; i++)
		if (b[i])
			return 0;
	return 1;
}

void l1t_memcheck_clean(struct l1_arena *a)
{
	char rep[4096];
	int r = l1_arena_memcheck(a, 0, rep, sizeof rep);
	ck_assert_msg(r == 0, "memcheck found %d problem(s): %s", r, rep);
}

void l1t_seen_dead(struct l1_arena *a, pid_t pid)
{
	static struct l1_client_info c[64];
	for (int tries = 0; tries < 2000; tries++) {
		int n = l1_arena_clients(a, c, 64), alive = 0;
		ck_assert_msg(n >= 0, "l1_arena_clients: %d %s", n, l1_last_error());
		for (int i = 0; i < n && i < 64; i++)
			alive |= c[i].pid == pid && c[i].alive;
		if (!alive)
			return;
		usleep(10000);
	}
	ck_abort_msg("pid %d was reaped but still holds its client lock after 20 s", (int)pid);
}

void l1t_gc_dead(struct l1_arena *a, uint64_t clients, struct l1_gc_result *sum)
{
	struct l1_gc_result g;
	memset(sum, 0, sizeof *sum);
	for (int i = 0; i < 2000 && (i == 0 || sum->clients_dropped < clients); i++) {
		if (i)
			usleep(10000);
		ck_assert_msg(l1_arena_gc(a, &g) == 0, "gc: %s", l1_last_error());
		sum->objects_reclaimed += g.objects_reclaimed;
		sum->dirty_requeued += g.dirty_requeued;
		sum->holds_dropped += g.holds_dropped;
		sum->clients_dropped += g.clients_dropped;
		sum->bytes_reclaimed += g.bytes_reclaimed;
	}
	ck_assert_msg(sum->clients_dropped == clients, "gc dropped %llu dead clients, not %llu, "
		      "in 20 s", (unsigned long long)sum->clients_dropped,
		      (unsigned long long)clients);
}

int l1t_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
