/*
 * nsutil.h - running a test's function in other namespaces, as a container
 * would: a new PID namespace (the function runs as its PID 1) and/or a
 * private mount namespace with its own /proc (mounted with given options,
 * e.g. "hidepid=2"), the way `unshare --pid --fork --mount-proc` does.
 */
#ifndef L1_NSUTIL_H
#define L1_NSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define L1T_NS_PID 1                    /* a new PID namespace */
#define L1T_NS_MOUNT_PROC 2             /* a private mount namespace, /proc anew */

/* Runs fn(arg) in a grandchild inside the namespaces asked for.  Returns
 * the pid of the child in between, which exits with fn's return value
 * (l1t_wait) and whose death kills the grandchild; or -1 when the kernel
 * refuses a namespace, with the reason in why (the test then skips and
 * says so). */
pid_t l1t_ns_spawn(int flags, const char *proc_opts, int (*fn)(void *), void *arg, char *why,
		   size_t len);

/* A writer and holder in its own PID namespace (with its own /proc): it
 * attaches to path, allocates one 64 KiB object filled from own_seed
 * (unpublished), holds the object published as held_key, whose bytes are
 * from held_seed, and reports its object's id.  l1t_ns_writer_start
 * returns the handle of l1t_ns_spawn (or -1: refused, why says so) once the
 * writer is ready; l1t_ns_writer_finish tells it to check both objects'
 * bytes and die attached, and returns its exit status (0: both intact). */
struct l1t_ns_writer {
	const char *path;
	const char *held_key;
	uint64_t held_seed, own_seed;
	uint64_t id;                    /* its object, once started */
	int ready[2], go[2];
};
pid_t l1t_ns_writer_start(struct l1t_ns_writer *w, char *why, size_t len);
int l1t_ns_writer_finish(struct l1t_ns_writer *w, pid_t k);

#endif
