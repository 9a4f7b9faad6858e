/*
 * dpdk.c - DPDK's heap as a baseline: rte_malloc/rte_free, which zero a
 * block when it is freed (so every block handed out reads as zeroes, the
 * pool's own promise), from librte_eal.so.23 (Debian's librte-eal23 ships
 * the library without headers; the four calls are declared here and
 * looked up with dlsym).  The EAL is set up once per process and changes
 * its affinity, so callers start it in a child process made for the run
 * (dpdk_start), and the parent removes the run directory the EAL leaves
 * behind (dpdk_cleanup).  Its memory is plain anonymous memory (--no-huge:
 * it takes none of the huge pages the pools use), on the first CPU the
 * process may run on.  Nothing here touches a pool.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpdk.h"

#define EAL_LIB "librte_eal.so.23"
#define EAL_MEM_MB "1024"

static void *(*rte_malloc_fn)(const char *type, size_t size, unsigned align);
static void (*rte_free_fn)(void *p);

void *dpdk_alloc(uint64_t size)
{
	return rte_malloc_fn("l1bench", size, 4096);
}

void dpdk_free(void *p)
{
	rte_free_fn(p);
}

/* Where the EAL of a root or other process puts its run directories. */
static const char *run_base(void)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	return getuid() == 0 ? "/var/run" : x ? x : "/tmp";
}

int dpdk_had_dir(void)
{
	char d[512];
	struct stat st;
	snprintf(d, sizeof d, "%s/dpdk", run_base());
	return stat(d, &st) == 0;
}

int dpdk_start(const char *prefix, char *why, size_t len)
{
	void *h = dlopen(EAL_LIB, RTLD_NOW | RTLD_GLOBAL);
	if (!h) {
		snprintf(why, len, "cannot load %s (Debian: librte-eal23): %s", EAL_LIB,
			 dlerror());
		return -1;
	}
	int (*eal_init)(int, char **) = (int (*)(int, char **))dlsym(h, "rte_eal_init");
	rte_malloc_fn = (void *(*)(const char *, size_t, unsigned))dlsym(h, "rte_malloc");
	rte_free_fn = (void (*)(void *))dlsym(h, "rte_free");
	if (!eal_init || !rte_malloc_fn || !rte_free_fn) {
		snprintf(why, len, "%s lacks rte_eal_init, rte_malloc or rte_free", EAL_LIB);
		return -1;
	}
	cpu_set_t set;
	int cpu = 0;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		while (cpu < CPU_SETSIZE - 1 && !CPU_ISSET(cpu, &set))
			cpu++;
	char lcore[16], pfx[128];
	snprintf(lcore, sizeof lcore, "%d", cpu);
	snprintf(pfx, sizeof pfx, "--file-prefix=%s", prefix);
	char *argv[] = { "l1bench", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
			 "-m", EAL_MEM_MB, "-l", lcore, pfx, "--log-level=*:error", NULL };
	if (eal_init((int)(sizeof argv / sizeof argv[0]) - 1, argv) < 0) {
		snprintf(why, len, "rte_eal_init (--no-huge, -m %s, -l %s) failed", EAL_MEM_MB,
			 lcore);
		return -1;
	}
	return 0;
}

void dpdk_cleanup(const char *prefix, int had_dir)
{
	char d[512];
	snprintf(d, sizeof d, "%s/dpdk/%s", run_base(), prefix);
	rmdir(d);
	if (!had_dir) {
		snprintf(d, sizeof d, "%s/dpdk", run_base());
		rmdir(d);               /* only if empty: another DPDK may use it */
	}
}
