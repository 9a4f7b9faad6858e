/*
 * dpdk.h - DPDK's rte_malloc/rte_free as a baseline heap (dpdk.c): loaded
 * at run time, started in a child process of its own.
 */
#ifndef L1_BENCH_DPDK_H
#define L1_BENCH_DPDK_H

#include <stddef.h>
#include <stdint.h>

/* Whether the EAL's run directory (…/dpdk) exists now: pass it to
 * dpdk_cleanup, which removes that directory only if it did not. */
int dpdk_had_dir(void);
/* In the child: loads librte_eal.so.23 and sets up its EAL on the first
 * CPU of this process's affinity, with prefix naming its run directory;
 * 0, or -1 with a sentence in why. */
int dpdk_start(const char *prefix, char *why, size_t len);
/* After dpdk_start: a 4096-aligned block of size bytes, or NULL; free. */
void *dpdk_alloc(uint64_t size);
void dpdk_free(void *p);
/* In the parent, after the child is gone: its run directory. */
void dpdk_cleanup(const char *prefix, int had_dir);

#endif
