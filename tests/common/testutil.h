/*
 * testutil.h - helpers shared by the Check suites: where to put pool files
 * (a directory of this program's own in the hugetlbfs mount tests/run.sh
 * made, $L1_TEST_DIR; else in a private directory under /dev/shm with the
 * shm fallback allowed), a config with test-sized defaults, process helpers
 * for the multi-process tests, and the suite runner (pools a failed test
 * left are removed before the next test takes pages; a line of progress
 * every 10 s).
 */
#ifndef L1_TESTUTIL_H
#define L1_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <sys/types.h>
#include "l1arena.h"

/* A fresh pool path for this test (unique per process and call); the file
 * does not exist yet.  Valid until the next call from the same process. */
const char *l1t_path(const char *name);
/* The private /dev/shm directory of this run ($L1_TEST_SHM_DIR, set by
 * tests/run.sh, else /dev/shm/l1test-UID). */
const char *l1t_shm_dir(void);
/* True when the pools go on hugetlbfs (run.sh mounted one). */
int l1t_on_hugetlbfs(void);
/* A config for a pool of size bytes at l1t_path(name): eager, 4 KiB align,
 * zeroing on, pinning off, shm fallback allowed unless on hugetlbfs. */
void l1t_config(struct l1_config *c, const char *name, uint64_t size);
/* Creates such a pool or fails the test. */
struct l1_arena *l1t_create(const char *name, uint64_t size);
/* Closes and removes the pool file. */
void l1t_destroy(struct l1_arena *a);
/* A layout of one tensor of n bytes (uint8). */
void l1t_layout_bytes(struct l1_layout *l, uint64_t n);
/* The state letter of pid in /proc/PID/stat ('R', 'S', 'Z', ...) and, if
 * ppid is not NULL, its parent; 0 (and *ppid 0) when there is no such
 * process. */
char l1t_proc_stat(pid_t pid, pid_t *ppid);
/* Waits for a child; returns its exit status, or 128+signal. */
int l1t_wait(pid_t pid);
/* Fills / checks a pattern derived from seed. */
void l1t_fill(void *p, uint64_t len, uint64_t seed);
int l1t_check(const void *p, uint64_t len, uint64_t seed);
int l1t_is_zero(const void *p, uint64_t len);
/* Every byte of p[0..len) is v. */
int l1t_is_filled(const void *p, uint64_t len, unsigned char v);
/* Runs a suite (fork mode, the Check default) and gives main's exit code.
 * Sets L1_TEST_DIR to a fresh directory for this program's pools, removed
 * at the end with whatever is left in it. */
int l1t_run_suite(Suite *s);
/* memcheck that must be clean; fails the test with the report otherwise. */
void l1t_memcheck_clean(struct l1_arena *a);
/* gc after clients died, until it has dropped `clients` of them (at most
 * 20 s, then the test fails): a dead process's client lock goes only when
 * its io_uring workers have exited, which under load can trail waitpid.
 * The results of every pass are summed into sum. */
void l1t_gc_dead(struct l1_arena *a, uint64_t clients, struct l1_gc_result *sum);
/* Without gc: waits (at most 20 s) until the pool's client table no longer
 * calls pid (reaped already, same PID namespace) alive. */
void l1t_seen_dead(struct l1_arena *a, pid_t pid);

/* 1 in a ThreadSanitizer build: a test whose forked child starts threads
 * (after fork from a process with threads) skips itself there, saying so,
 * since TSan does not support that ("dup thread with used id"). */
#if defined(__SANITIZE_THREAD__)
#define L1T_TSAN 1
#else
#define L1T_TSAN 0
#endif

#endif
