/*
 * l1ctl.h - what the l1ctl subcommands share: the parsed options and the
 * helpers that turn library errors into sentences a person can act on.
 * Exit codes: 0 success; 1 the operation failed (the message says why and
 * what to do); 2 usage error; 3 memcheck found problems.
 */
#ifndef L1CTL_H
#define L1CTL_H

#include <stdint.h>
#include "l1arena.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_PROBLEMS 3

struct ctl {
	const char *cmd;
	const char *path;
	uint64_t size, init_size, grow_step, align, max_objects, hugepage_size;
	uint64_t hugepages, bytes;
	const char *mount;
	const char *layout, *file, *key, *out, *mode_str, *textfile;
	int lazy, allow_shm, force, zero_on_free, publish, repair, json, exact, read_only;
	int nargs;
	char **args;
};

int ctl_fail(const char *what, int err);
/* ctl_fail for a pool that cannot be attached, plus what to do about it. */
int ctl_fail_attach(const char *what, const char *path, int err);
int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
struct l1_arena *ctl_open(const struct ctl *c, int readonly);
int ctl_parse_id(const char *s, uint64_t *id);
void ctl_human(uint64_t bytes, char *buf, unsigned len);

int cmd_setup(struct ctl *c);
int cmd_create(struct ctl *c);
int cmd_info(struct ctl *c);
int cmd_memcheck(struct ctl *c);
int cmd_gc(struct ctl *c);
int cmd_destroy(struct ctl *c);
int cmd_ls(struct ctl *c);
int cmd_put(struct ctl *c);
int cmd_get(struct ctl *c);
int cmd_rm(struct ctl *c);
int cmd_publish(struct ctl *c);
int cmd_metrics(struct ctl *c);

#endif
