/* sessionfs: options, config, mount, the multithreaded loop, clean exit. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "fs.h"

#ifndef SESSIONFS_VERSION
#define SESSIONFS_VERSION "unknown"
#endif

#define SECRET_HEAP_SIZE (8u << 20)

struct options {
	char *config;
	char *nonopt[2]; /* [source] mountpoint */
	int n_nonopt;
};

static const struct fuse_opt option_spec[] = {
	{ "config=%s", offsetof(struct options, config), 0 },
	FUSE_OPT_END,
};

/* mount.fuse3 runs "sessionfs SOURCE MOUNTPOINT -o ...": keep the last
 * non-option argument as the mountpoint, ignore a source before it. */
static int on_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	if (key != FUSE_OPT_KEY_NONOPT) {
		return 1;
	}
	if (o->n_nonopt == 2) {
		fprintf(stderr, "sessionfs: too many arguments: %s\n", arg);
		return -1;
	}
	o->nonopt[o->n_nonopt] = strdup(arg);
	return o->nonopt[o->n_nonopt++] ? 0 : -1;
}

static void usage(const char *prog)
{
	printf("usage: %s [options] MOUNTPOINT\n\n"
	       "Authentication sessions as files: cat MOUNTPOINT/PROVIDER/TARGET/token.\n\n"
	       "sessionfs options:\n"
	       "    -o config=FILE         config file (default /etc/sessionfs.conf if present)\n"
	       "    -o allow_other         let other users in, as [access] in the config allows\n\n",
	       prog);
}

/* Tells systemd (Type=notify) that the mount is up. */
static void notify_ready(void)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, "READY=1");
#endif
}

static char *default_state_dir(void)
{
	const char *home = getenv("HOME"), *xdg = getenv("XDG_STATE_HOME");
	char *dir = NULL;

	if (getuid() == 0) {
		return strdup(CONFIG_DEFAULT_STATE_DIR);
	}
	if (xdg && *xdg && asprintf(&dir, "%s/sessionfs", xdg) >= 0) {
		return dir;
	}
	if (home && asprintf(&dir, "%s/.local/state/sessionfs", home) >= 0) {
		return dir;
	}
	return strdup(CONFIG_DEFAULT_STATE_DIR);
}

static int load_config(const char *path, struct config **ret)
{
	int r;

	if (!path && access("/etc/sessionfs.conf", F_OK) == 0) {
		path = "/etc/sessionfs.conf";
	}
	r = config_load(path, auth_config_ranges, ret);
	if (r < 0) {
		return r;
	}
	/* Before fuse_daemonize() moves us to /. */
	if (!path || strcmp((*ret)->state_dir, CONFIG_DEFAULT_STATE_DIR) == 0) {
		char *dir = default_state_dir();
		if (dir) {
			free((*ret)->state_dir);
			(*ret)->state_dir = dir;
		}
	}
	/* A relative state_dir is made absolute by store_open(), before
	 * fuse_daemonize() too, without resolving symlinks, which it refuses. */
	return 0;
}

/* The multithreaded loop. No request waits on the network in a worker (a
 * read that needs a login is answered from the login's end), so workers are
 * few; they are kept when idle (libfuse's default, -1) instead of made and
 * ended per request, unless -o max_idle_threads asks otherwise. */
static int loop_run(struct fs *fs, const struct fuse_cmdline_opts *opts)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	char idle[16] = "all";
	int r;

	if (!loop) {
		return log_error_errno(-ENOMEM, "Failed to configure the FUSE loop: %m");
	}
	fuse_loop_cfg_set_clone_fd(loop, (unsigned)opts->clone_fd);
	fuse_loop_cfg_set_max_threads(loop, FS_MAX_THREADS);
	if (opts->max_idle_threads != UINT_MAX) {
		fuse_loop_cfg_set_idle_threads(loop, opts->max_idle_threads);
		snprintf(idle, sizeof(idle), "%u", opts->max_idle_threads);
	}
	log_info("FUSE loop: at most %u worker threads, %s of them kept when idle, clone_fd %s", FS_MAX_THREADS, idle,
		 opts->clone_fd ? "on" : "off");
	r = fuse_session_loop_mt(fs->se, loop);
	fuse_loop_cfg_destroy(loop);
	/* A positive result is the signal that ended the loop: a clean exit. */
	return r >= 0 ? 0 : log_error_errno(r, "FUSE loop failed: %m");
}

static int run(struct fs *fs, struct fuse_args *args, struct fuse_cmdline_opts *opts)
{
	int r;

	fs->se = fuse_session_new(args, &fs_ops, sizeof(fs_ops), fs);
	if (!fs->se) {
		return -EINVAL;
	}
	if (fuse_set_signal_handlers(fs->se) != 0) {
		fuse_session_destroy(fs->se);
		return -EIO;
	}
	if (fuse_session_mount(fs->se, opts->mountpoint) != 0) {
		r = log_error_errno(-EIO, "Failed to mount %s", opts->mountpoint);
		goto out;
	}
	if (!opts->foreground) {
		log_to_syslog(); /* stderr goes to /dev/null from here on */
	}
	fuse_daemonize(opts->foreground);
	if (!opts->foreground) {
		secret_relock();
	}
	r = cache_start(fs);
	if (r == 0) {
		r = auth_core_start(fs->core); /* and with it HTTP */
	}
	if (r == 0) {
		log_info("Mounted on %s", opts->mountpoint);
		notify_ready();
		r = loop_run(fs, opts);
	}
	/* Stop what uses the mount before it goes: refresh workers (they notify),
	 * then the invalidation thread (it writes to /dev/fuse). Views of the
	 * mount that outlive it (bind mounts in containers) must not keep
	 * serving tokens from the page cache. */
	auth_core_stop(fs->core); /* answers the opens still waiting for a login */
	ops_drain(fs);
	auth_core_set_notify(fs->core, NULL, NULL);
	cache_drop_all(fs);
	cache_stop(fs);
	fuse_session_unmount(fs->se);
	opens_free_all(fs);
	pagecache_drop_target(0);
	log_info("Unmounted %s", opts->mountpoint);
out:
	fuse_remove_signal_handlers(fs->se);
	cache_stop(fs);
	return r;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = { 0 };
	struct options options = { 0 };
	struct config *cfg = NULL;
	struct store *store = NULL;
	struct fs fs = { .uid = getuid(), .gid = getgid(), .started = time(NULL) };
	int r = 1;

	/* No core dumps or ptrace peeks at a process full of tokens. */
	prctl(PR_SET_DUMPABLE, 0);
	if (fuse_opt_parse(&args, &options, option_spec, on_option) != 0 ||
	    (options.n_nonopt > 0 && fuse_opt_add_arg(&args, options.nonopt[options.n_nonopt - 1]) != 0) ||
	    fuse_parse_cmdline(&args, &opts) != 0) {
		return 1;
	}
	if (opts.show_help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		r = 0;
		goto out;
	}
	if (opts.show_version) {
		printf("sessionfs %s\n", SESSIONFS_VERSION);
		fflush(stdout); /* before libfuse's own line, which goes to stdout unbuffered */
		fuse_lowlevel_version();
		r = 0;
		goto out;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "%s: no mountpoint given (see --help)\n", argv[0]);
		goto out;
	}
	log_set_level(opts.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	secret_init(SECRET_HEAP_SIZE);
	if (load_config(options.config, &cfg) < 0 ||
	    store_open(cfg->state_dir, &store) < 0 || auth_core_new(cfg, store, &fs.core) < 0) {
		goto out;
	}
	pthread_mutex_init(&fs.inval_lock, NULL);
	pthread_cond_init(&fs.inval_cond, NULL);
	pthread_mutex_init(&fs.pending_lock, NULL);
	pthread_cond_init(&fs.pending_cond, NULL);
	opens_init(&fs);
	auth_core_set_notify(fs.core, cache_on_change, &fs);
	fs.page_cache = cfg->page_cache;
	/* The kernel checks modes; sessionfs decides owners and modes. */
	fuse_opt_add_arg(&args, "-odefault_permissions");
	fuse_opt_add_arg(&args, "-ofsname=sessionfs,subtype=sessionfs");
	r = run(&fs, &args, &opts) < 0;
out:
	auth_core_free(fs.core); /* logs out where logout_on_exit says so, ends HTTP */
	if (fs.se) {
		fuse_session_destroy(fs.se);
	}
	store_free(store);
	config_free(cfg);
	free(opts.mountpoint);
	free(options.config);
	free(options.nonopt[0]);
	free(options.nonopt[1]);
	fuse_opt_free_args(&args);
	return r;
}
