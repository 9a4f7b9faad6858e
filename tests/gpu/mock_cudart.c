/*
 * mock_cudart.c - a stand-in libcudart for machines without a GPU, so that
 * gpu_pin's own logic (and the library's pinning through it) can be run
 * anywhere: build with `cc -shared -fPIC -o libcudart_mock.so mock_cudart.c`
 * and point L1ARENA_CUDART at it.  "Device" memory is malloc'd, copies are
 * memcpy, and cudaHostRegister keeps a per-process table of ranges, refusing
 * overlaps (error 712) as CUDA does; cudaPointerGetAttributes says
 * cudaMemoryTypeHost only inside a registered range, and
 * cudaHostGetDevicePointer works only for ranges registered Mapped.  Mutex
 * guarded; the table holds 4096 ranges.  Only the calls gpu_pin, bench_h2d
 * and arena/pin.c make are here.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { OK = 0, INVALID_VALUE = 1, MEMORY_ALLOCATION = 2, ALREADY_REGISTERED = 712,
       NOT_REGISTERED = 713 };

struct attr {
	int type;
	int device;
	void *device_pointer;
	void *host_pointer;
	long reserved[8];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *p;
	size_t len;
	unsigned flags;
} regs[4096];
static int nregs;

int cudaGetDeviceCount(int *n)
{
	const char *v = getenv("MOCK_CUDA_DEVICES");
	*n = v ? atoi(v) : 1;
	return OK;
}

const char *cudaGetErrorString(int e)
{
	switch (e) {
	case OK: return "no error";
	case INVALID_VALUE: return "invalid argument";
	case MEMORY_ALLOCATION: return "out of memory";
	case ALREADY_REGISTERED: return "part or all of the requested memory range is "
		"already mapped";
	case NOT_REGISTERED: return "pointer does not correspond to a registered "
		"memory region";
	default: return "mock: unknown error";
	}
}

int cudaSetDevice(int d) { return d == 0 ? OK : INVALID_VALUE; }
int cudaDeviceSynchronize(void) { return OK; }
int cudaMalloc(void **p, size_t n) { *p = malloc(n); return *p ? OK : MEMORY_ALLOCATION; }
int cudaFree(void *p) { free(p); return OK; }
int cudaMemset(void *p, int v, size_t n) { memset(p, v, n); return OK; }
int cudaMemcpy(void *d, const void *s, size_t n, int kind)
{
	(void)kind;
	memcpy(d, s, n);
	return OK;
}
int cudaMemcpyAsync(void *d, const void *s, size_t n, int kind, void *stream)
{
	(void)stream;
	return cudaMemcpy(d, s, n, kind);
}
int cudaHostAlloc(void **p, size_t n, unsigned flags)
{
	(void)flags;
	return cudaMalloc(p, n);
}
int cudaFreeHost(void *p) { free(p); return OK; }
int cudaEventCreate(void **e)
{
	*e = calloc(1, sizeof(struct timespec));
	return *e ? OK : MEMORY_ALLOCATION;
}
int cudaEventDestroy(void *e) { free(e); return OK; }
int cudaEventRecord(void *e, void *stream)
{
	(void)stream;
	clock_gettime(CLOCK_MONOTONIC, e);
	return OK;
}
int cudaEventSynchronize(void *e) { (void)e; return OK; }
int cudaEventElapsedTime(float *ms, void *a, void *b)
{
	const struct timespec *x = a, *y = b;
	*ms = (float)((y->tv_sec - x->tv_sec) * 1e3 + (y->tv_nsec - x->tv_nsec) / 1e6);
	return OK;
}

static int find(const char *p)
{
	for (int i = 0; i < nregs; i++)
		if (p >= regs[i].p && p < regs[i].p + regs[i].len)
			return i;
	return -1;
}

int cudaHostRegister(void *p, size_t len, unsigned flags)
{
	char *c = p;
	int r = OK;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nregs; i++)
		if (c < regs[i].p + regs[i].len && regs[i].p < c + len)
			r = ALREADY_REGISTERED;
	if (r == OK && nregs == 4096)
		r = MEMORY_ALLOCATION;
	if (r == OK) {
		regs[nregs].p = c;
		regs[nregs].len = len;
		regs[nregs].flags = flags;
		nregs++;
	}
	pthread_mutex_unlock(&mu);
	return r;
}

int cudaHostUnregister(void *p)
{
	int r = NOT_REGISTERED;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nregs; i++)
		if (regs[i].p == p) {
			regs[i] = regs[--nregs];
			r = OK;
			break;
		}
	pthread_mutex_unlock(&mu);
	return r;
}

int cudaPointerGetAttributes(struct attr *a, const void *p)
{
	pthread_mutex_lock(&mu);
	int i = find(p);
	memset(a, 0, sizeof *a);
	if (i >= 0) {
		a->type = 1;
		a->host_pointer = (void *)p;
		a->device_pointer = (regs[i].flags & 2) ? (void *)p : NULL;
	}
	pthread_mutex_unlock(&mu);
	return OK;
}

int cudaHostGetDevicePointer(void **d, void *p, unsigned flags)
{
	(void)flags;
	pthread_mutex_lock(&mu);
	int i = find(p);
	int r = (i >= 0 && (regs[i].flags & 2)) ? OK : INVALID_VALUE;
	*d = r == OK ? p : NULL;
	pthread_mutex_unlock(&mu);
	return r;
}
