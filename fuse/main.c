/*
 * main.c - l1fs, the FUSE view of an l1arena pool:
 *
 *   l1fs MOUNTPOINT [--arena PATH] [-o OPTIONS] [-f] [-s] [-d]
 *
 * Parses options (fuse_opt, offsetof into struct l1fs_cli), attaches to the
 * pool as an ordinary client (no pinning), mounts with default_permissions
 * always, runs the session loop (multi-threaded unless -s) and the reaper,
 * and on SIGINT/SIGTERM/SIGHUP or `fusermount3 -u` stops the reaper,
 * unmounts and detaches, which drops the holds of any files still open.  A
 * crashed l1fs leaves the pool intact: it is only a client, and the next
 * gc (any client's, or a restarted l1fs) drops its holds and client slot.
 *
 * Without -f it daemonises before attaching (the client slot must carry the
 * daemon's pid), but the parent only exits once the mount is live, with 0,
 * or with 1 after the child has said why on stderr.  All state lives in one
 * struct l1fs on main's stack, handed to fuse_session_new.
 */
#include "l1fs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

struct l1fs_cli {
	char *arena;
	double gc_interval;             /* seconds; 0 = off */
	double entry_timeout;
	double attr_timeout;
	unsigned read_ahead_kb;         /* 0 = leave the kernel's */
};

#define CLI_OPT(t, m) { t, offsetof(struct l1fs_cli, m), 0 }
enum { KEY_ARENA, KEY_READ_AHEAD };
#define MAX_THREADS_LIMIT 1024u
#define L1FS_LOCK_WAIT_MS "1000"        /* unless $L1ARENA_LOCK_TIMEOUT_MS says */

static const struct fuse_opt cli_spec[] = {
	FUSE_OPT_KEY("--arena ", KEY_ARENA),
	FUSE_OPT_KEY("--arena=", KEY_ARENA),
	FUSE_OPT_KEY("arena=", KEY_ARENA),
	CLI_OPT("--gc-interval=%lf", gc_interval),
	CLI_OPT("gc_interval=%lf", gc_interval),
	CLI_OPT("entry_timeout=%lf", entry_timeout),
	CLI_OPT("attr_timeout=%lf", attr_timeout),
	FUSE_OPT_KEY("read_ahead_kb=", KEY_READ_AHEAD),
	FUSE_OPT_END
};

/* The options fuse_opt's templates would take loosely: the pool path (not
 * empty; the same if given twice) and read_ahead_kb (decimal, in range). */
static int cli_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
	struct l1fs_cli *cli = data;
	(void)out;
	if (key == KEY_ARENA) {
		/* "--arenaPATH" (the separate-argument form, joined), "--arena=PATH"
		 * or "arena=PATH" */
		const char *v = !strncmp(arg, "--arena=", 8) ? arg + 8
				: !strncmp(arg, "arena=", 6) ? arg + 6 : arg + 7;
		if (!*v) {
			fprintf(stderr, "l1fs: the pool path (--arena PATH, -o arena=PATH) is empty: "
					"give the pool file, or leave the option out for "
					"$L1ARENA_PATH or %s\n", L1_DEFAULT_PATH);
			return -1;
		}
		if (cli->arena && strcmp(cli->arena, v)) {
			fprintf(stderr, "l1fs: two pool paths given (%s and %s): give one\n",
				cli->arena, v);
			return -1;
		}
		free(cli->arena);
		return (cli->arena = strdup(v)) ? 0 : -1;
	}
	if (key == KEY_READ_AHEAD) {
		const char *v = arg + strlen("read_ahead_kb=");
		char *end;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		if (!isdigit((unsigned char)*v) || *end || errno || n > (1u << 20)) {
			fprintf(stderr, "l1fs: read_ahead_kb takes KiB from 0 to %u, not '%s'\n",
				1u << 20, v);
			return -1;
		}
		cli->read_ahead_kb = (unsigned)n;
		return 0;
	}
	return 1;       /* keep it for FUSE */
}

static void usage(const char *prog)
{
	printf("usage: %s MOUNTPOINT [--arena PATH] [options]\n\n"
	       "The FUSE view of an l1arena pool: objects/ID (the objects' bytes), keys/KEY\n"
	       "(symlinks to them), meta/ID (their records as text; also as user.l1.*\n"
	       "extended attributes of objects/ID), stats, metrics (Prometheus), clients.\n\n"
	       "l1fs options:\n"
	       "    --arena PATH, -o arena=PATH   the pool file (default $L1ARENA_PATH,\n"
	       "                                  else %s)\n"
	       "    -o gc_interval=SEC            run gc every SEC seconds (default 2; 0 = never)\n"
	       "    -o entry_timeout=SEC          kernel caching of names (default 1)\n"
	       "    -o attr_timeout=SEC           kernel caching of attributes (default 1)\n"
	       "    -o read_ahead_kb=N            read-ahead of the mount (default 4096, at\n"
	       "                                  most 1048576; root only; 0 = the kernel's)\n"
	       "    -o max_threads=N              FUSE handler threads, 1 to 1024 (default 10)\n"
	       "A call that needs the pool lock waits for it at most 1 s (or\n"
	       "$L1ARENA_LOCK_TIMEOUT_MS), then fails with EAGAIN; stats names the holder.\n"
	       "    -o allow_other                let other users in (as far as the objects'\n"
	       "                                  modes allow); a non-root user needs\n"
	       "                                  user_allow_other in /etc/fuse.conf\n"
	       "default_permissions is always on: the kernel checks the records' owner,\n"
	       "group and mode.\n\n",
	       prog, L1_DEFAULT_PATH);
}

/* Parent waits for the child to report the mount live (0) or failed. */
static int daemon_start(void)
{
	int p[2];
	char c = 1;

	if (pipe(p) < 0) {
		perror("l1fs: pipe");
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("l1fs: fork");
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		ssize_t n;
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 && c == 0 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	return p[1];
}

static void daemon_ready(int fd)
{
	char c = 0;
	int nul;

	if (fd < 0)
		return;
	if (chdir("/") < 0)
		(void)0;
	nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
	if (write(fd, &c, 1) != 1)
		(void)0;
	close(fd);
}

static int attach(struct l1fs *fs, const char *path)
{
	struct l1_open_opts oo;
	struct l1_vm_space vm;
	int r;

	l1_open_opts_init(&oo);
	oo.pin = L1_PIN_OFF;
	r = l1_arena_open(path, &oo, &fs->arena);
	if (r < 0) {
		const char *why = l1_last_error();
		fprintf(stderr, "l1fs: cannot attach to the pool %s: %s\n", path,
			why && *why ? why : l1_strerror(r));
		if (r == -ENOENT)
			fprintf(stderr, "l1fs: create it first (l1ctl create) or pass --arena PATH\n");
		return r;
	}
	r = l1_get_vm_space(fs->arena, &vm);
	if (r < 0) {
		fprintf(stderr, "l1fs: %s: %s\n", path, l1_strerror(r));
		return r;
	}
	fs->pool_id = vm.pool_id;
	/* Map the committed data in now, on huge pages (a page-table entry per
	 * huge page; 4 KiB pages would cost real memory): otherwise the first
	 * read of each region through the view pays its faults.  Best effort;
	 * the uncommitted part of a lazy pool is left alone. */
	if (vm.page_size >= (2u << 20) && vm.committed)
		madvise((char *)vm.base + vm.data_offset, vm.committed, MADV_POPULATE_READ);
	return 0;
}

static int run_loop(struct fuse_session *se, const struct fuse_cmdline_opts *o)
{
	if (o->singlethread)
		return fuse_session_loop(se);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)o->clone_fd);
	if (o->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, o->max_idle_threads);
	fuse_loop_cfg_set_max_threads(cfg, o->max_threads);
	int r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct l1fs_cli cli = { .gc_interval = 2.0, .entry_timeout = 1.0,
				.attr_timeout = 1.0, .read_ahead_kb = 4096 };
	struct l1fs fs;
	const char *path;
	int ret = 1, ready_fd = -1, r;

	memset(&opts, 0, sizeof opts);
	memset(&fs, 0, sizeof fs);
	pthread_mutex_init(&fs.cache_lock, NULL);
	pthread_mutex_init(&fs.handles_lock, NULL);
	fs.handles.next = fs.handles.prev = &fs.handles;
	if (fuse_opt_parse(&args, &cli, cli_spec, cli_proc) == -1 ||
	    fuse_opt_add_arg(&args, "-odefault_permissions,fsname=l1arena,subtype=l1fs") ||
	    fuse_parse_cmdline(&args, &opts) != 0)
		goto out_args;
	if (opts.show_help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (opts.show_version) {
		printf("l1fs for l1arena %d.%d, FUSE library %s\n", L1_VERSION_MAJOR,
		       L1_VERSION_MINOR, fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "usage: %s MOUNTPOINT [--arena PATH] [options]  (--help for more)\n",
			argv[0]);
		goto out_args;
	}
	if (!opts.singlethread && (opts.max_threads == 0 || opts.max_threads > MAX_THREADS_LIMIT)) {
		fprintf(stderr, "l1fs: max_threads takes 1 to %u threads, not %d\n",
			MAX_THREADS_LIMIT, (int)opts.max_threads);
		goto out_args;
	}
	if (!(cli.gc_interval >= 0 && cli.gc_interval <= 86400) ||
	    !(cli.entry_timeout >= 0 && cli.entry_timeout <= 86400) ||
	    !(cli.attr_timeout >= 0 && cli.attr_timeout <= 86400)) {
		fprintf(stderr, "l1fs: gc_interval, entry_timeout and attr_timeout are seconds "
				"between 0 and 86400\n");
		goto out_args;
	}
	/* a reader of the view waits (in the kernel, uninterruptibly) while a
	 * handler thread waits for the pool lock: bound that at 1 s here; past
	 * it the call answers EAGAIN and stats names the lock's holder */
	setenv("L1ARENA_LOCK_TIMEOUT_MS", L1FS_LOCK_WAIT_MS, 0);
	path = cli.arena ? cli.arena : getenv("L1ARENA_PATH");
	if (!path || !*path)
		path = L1_DEFAULT_PATH;
	fs.gc_interval_ms = (unsigned)(cli.gc_interval * 1000 + 0.5);
	fs.read_ahead_kb = cli.read_ahead_kb;
	fs.mountpoint = realpath(opts.mountpoint, NULL);
	fs.entry_timeout = cli.entry_timeout;
	fs.attr_timeout = cli.attr_timeout;
	fs.uid = getuid();
	fs.gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs.mount_time);

	if (!opts.foreground && (ready_fd = daemon_start()) < 0)
		goto out_args;
	if (attach(&fs, path) < 0)
		goto out_arena;
	fs.se = fuse_session_new(&args, &l1fs_ops, sizeof l1fs_ops, &fs);
	if (!fs.se)
		goto out_arena;
	if (fuse_set_signal_handlers(fs.se) != 0)
		goto out_session;
	if (fuse_session_mount(fs.se, opts.mountpoint) != 0)
		goto out_signals;
	r = l1fs_reaper_start(&fs);
	if (r < 0) {
		fprintf(stderr, "l1fs: cannot start the gc thread: %s\n", strerror(-r));
		goto out_unmount;
	}
	daemon_ready(ready_fd);
	ready_fd = -1;

	r = run_loop(fs.se, &opts);
	/* a signal is a clean shutdown; so is the mount going away, which the
	 * kernel can report as an aborted connection (after a lazy unmount,
	 * when the last user goes) rather than ENODEV */
	ret = (r == 0 || r == SIGINT || r == SIGTERM || r == SIGHUP || r == -ECONNABORTED) ? 0 : 1;

	l1fs_reaper_stop(&fs);
	l1fs_handles_free(&fs);
out_unmount:
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
out_arena:
	l1_arena_close(fs.arena);
	pthread_mutex_lock(&fs.cache_lock);
	l1fs_idset_free(&fs.cached);
	pthread_mutex_unlock(&fs.cache_lock);
out_args:
	free(fs.mountpoint);
	free(opts.mountpoint);
	free(cli.arena);
	fuse_opt_free_args(&args);
	return ret;
}
