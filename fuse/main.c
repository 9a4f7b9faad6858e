/*
 * main.c - l1fs, the FUSE view of an l1arena pool:
 *
 *   l1fs MOUNTPOINT [--arena PATH] [-o OPTIONS] [-f] [-s] [-d]
 *   l1fs POOL MOUNTPOINT [-o OPTIONS]      (the order mount.fuse3 passes)
 *
 * Parses options (fuse_opt, offsetof into struct l1fs_cli), attaches to the
 * pool as an ordinary client (no pinning), mounts with default_permissions
 * always, runs the session loop (multi-threaded unless -s) and the reaper,
 * and on SIGINT/SIGTERM/SIGHUP or `fusermount3 -u` stops the reaper,
 * unmounts and detaches, which drops the holds of any files still open.
 * A signal that comes while object files are open (a reader's mmap keeps
 * its file open) does not unmount under them: l1fs says so on stderr and
 * stops when the last one closes (a second signal of the same kind does not
 * hurry it; SIGKILL cannot be helped).  The mount's source is
 * `l1arena:POOL` (findmnt, df), its type fuse.l1fs.  A
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
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

struct l1fs_cli {
	char *arena;
	char *nonopt[2];                /* SOURCE MOUNTPOINT, or MOUNTPOINT */
	int nnonopt;
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

/* The positional arguments (one: the mount point; or two: the pool, then
 * the mount point, as mount(8) and mount.fuse3 pass them), and the options
 * fuse_opt's templates would take loosely: the pool path (not empty; the
 * same if given twice) and read_ahead_kb (decimal, in range). */
static int cli_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
	struct l1fs_cli *cli = data;
	(void)out;
	if (key == FUSE_OPT_KEY_NONOPT) {
		if (cli->nnonopt == 2) {
			fprintf(stderr, "l1fs: too many arguments at '%s': give MOUNTPOINT, or POOL "
				"MOUNTPOINT\n", arg);
			return -1;
		}
		cli->nonopt[cli->nnonopt++] = strdup(arg);
		return 0;
	}
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
	printf("usage: %s MOUNTPOINT [--arena PATH] [options]\n"
	       "       %s POOL MOUNTPOINT [-o options]   (as mount -t fuse.l1fs passes it)\n\n"
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
	       "group and mode.  SIGTERM while files of the view are open (or mapped)\n"
	       "waits for the last one to close.  In /etc/fstab:\n"
	       "    /dev/hugepages/pool  /mnt/l1  fuse.l1fs  nofail,gc_interval=2  0 0\n\n",
	       prog, prog, L1_DEFAULT_PATH);
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
	l1fs_intact_init(fs, vm.fd, vm.size);
	/* Map the committed data in now, on huge pages (a page-table entry per
	 * huge page; 4 KiB pages would cost real memory): otherwise the first
	 * read of each region through the view pays its faults.  Best effort;
	 * the uncommitted part of a lazy pool is left alone. */
	if (vm.page_size >= (2u << 20) && vm.committed)
		madvise((char *)vm.base + vm.data_offset, vm.committed, MADV_POPULATE_READ);
	return 0;
}

/* ---- stopping: never under a reader's mapping --------------------------- */

static struct l1fs *the_fs;             /* for the signal handler only */

static void put_str(const char *s)
{
	if (write(2, s, strlen(s)) < 0)
		(void)0;
}

/* SIGINT/SIGTERM/SIGHUP: stop now if no object file is open, else note the
 * request; fh_free raises the signal again when the last one closes. */
static void on_stop_signal(int sig)
{
	struct l1fs *fs = the_fs;
	if (!fs || !fs->se)
		return;
	if (atomic_load(&fs->open_files) == 0) {
		fuse_session_exit(fs->se);
		return;
	}
	if (atomic_exchange(&fs->stop_signal, sig) == 0)
		put_str("l1fs: files of the view are still open or mapped: unmounting now would "
			"kill their readers (SIGBUS); stopping when the last one closes "
			"(see `cat MOUNT/clients`)\n");
}

static int set_signals(struct l1fs *fs)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	the_fs = fs;
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
	    sigaction(SIGHUP, &sa, NULL))
		return -1;
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL);
}

static void reset_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	the_fs = NULL;
}

/* A mount point whose l1fs died answers ENOTCONN: say what clears it. */
static int check_mountpoint(const char *mp)
{
	struct stat st;
	struct statvfs sv;
	/* statfs always reaches the file system (stat may be answered from the
	 * kernel's attribute cache of a dead mount) */
	if (stat(mp, &st) == 0 && statvfs(mp, &sv) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		fprintf(stderr, "l1fs: %s is not a directory\n", mp);
		return -1;
	}
	if (errno == ENOTCONN)
		fprintf(stderr, "l1fs: %s is a dead mount: the l1fs that served it stopped "
			"(\"Transport endpoint is not connected\"); run `fusermount3 -u %s` "
			"(or, as root, `umount -l %s`), then start l1fs again\n", mp, mp, mp);
	else
		fprintf(stderr, "l1fs: mount point %s: %s\n", mp, strerror(errno));
	return -1;
}

/* -o fsname=l1arena:POOL, with the commas and backslashes of POOL escaped
 * as the FUSE option parser wants. */
static int add_fsname(struct fuse_args *args, const char *pool)
{
	size_t n = strlen(pool);
	char *o = malloc(2 * n + 32), *p;
	if (!o)
		return -1;
	p = o + sprintf(o, "-ofsname=l1arena:");
	for (const char *q = pool; *q; q++) {
		if (*q == ',' || *q == '\\')
			*p++ = '\\';
		*p++ = *q;
	}
	*p = 0;
	int r = fuse_opt_add_arg(args, o);
	free(o);
	return r;
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
	l1fs_intact_init(&fs, -1, 0);
	if (fuse_opt_parse(&args, &cli, cli_spec, cli_proc) == -1)
		goto out_args;
	if (cli.nnonopt == 2) {         /* POOL MOUNTPOINT */
		if (cli.arena && strcmp(cli.arena, cli.nonopt[0])) {
			fprintf(stderr, "l1fs: two pools given: %s and --arena %s\n",
				cli.nonopt[0], cli.arena);
			goto out_args;
		}
		if (!cli.arena)
			cli.arena = strdup(cli.nonopt[0]);
	}
	if (cli.nnonopt && fuse_opt_add_arg(&args, cli.nonopt[cli.nnonopt - 1]))
		goto out_args;
	if (fuse_opt_add_arg(&args, "-odefault_permissions,subtype=l1fs") ||
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
	if (check_mountpoint(opts.mountpoint) < 0 || add_fsname(&args, path))
		goto out_args;
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
	if (set_signals(&fs) != 0)
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
	reset_signals();
out_session:
	fuse_session_destroy(fs.se);
out_arena:
	if (fs.arena && l1fs_intact(&fs))
		fprintf(stderr, "l1fs: not detaching from the damaged pool (that would touch "
			"its lost pages); its client slot stays until the pool is recreated\n");
	else
		l1_arena_close(fs.arena);
	pthread_mutex_lock(&fs.cache_lock);
	l1fs_idset_free(&fs.cached);
	pthread_mutex_unlock(&fs.cache_lock);
out_args:
	free(fs.mountpoint);
	free(opts.mountpoint);
	free(cli.arena);
	free(cli.nonopt[0]);
	free(cli.nonopt[1]);
	fuse_opt_free_args(&args);
	return ret;
}
