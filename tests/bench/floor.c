/* The floor of sessionfs's read path: a minimal libfuse low-level file
 * system with one 40-byte file at the path depth of a token
 * (MOUNT/aos/lab/token), opened as sessionfs opens a session file it reads
 * with direct I/O (no flush) and served by the same loop (libfuse 3.12's,
 * at most 64 workers, idle ones kept). What is left between the two is
 * sessionfs's own work per open and read.
 *
 *   floor MOUNTPOINT [-f] [other libfuse options]
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char content[] = "0123456789abcdef0123456789abcdef0123456\n"; /* 40 bytes */
static const char *const names[] = { NULL, NULL, "aos", "lab", "token" }; /* by inode */
static time_t started;

static void fill(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = ino == 4 ? S_IFREG | 0400 : S_IFDIR | 0755;
	st->st_nlink = ino == 4 ? 1 : 2;
	st->st_size = ino == 4 ? (off_t)sizeof(content) - 1 : 0;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_atime = st->st_mtime = st->st_ctime = started;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = { 0 };

	if (parent < 1 || parent > 3 || strcmp(name, names[parent + 1]) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = parent + 1;
	e.generation = 1;
	e.entry_timeout = 86400.0;
	e.attr_timeout = e.ino == 4 ? 1.0 : 86400.0; /* as sessionfs's session files and directories */
	fill(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino < 1 || ino > 4) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill(ino, &st);
	fuse_reply_attr(req, &st, ino == 4 ? 1.0 : 86400.0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != 4) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fi->direct_io = 1;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	size_t len = sizeof(content) - 1;

	(void)ino;
	(void)fi;
	if ((size_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	fuse_reply_buf(req, content + off, len - (size_t)off < size ? len - (size_t)off : size);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_readahead = 0;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) {
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	}
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.open = op_open,
	.read = op_read,
};

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct fuse_loop_config *loop;
	struct fuse_session *se;
	int r = 1;

	started = time(NULL);
	if (fuse_parse_cmdline(&args, &opts) != 0 || !opts.mountpoint) {
		fprintf(stderr, "usage: %s MOUNTPOINT [-f]\n", argv[0]);
		return 2;
	}
	fuse_opt_add_arg(&args, "-odefault_permissions");
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (se && fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, opts.mountpoint) == 0) {
			fuse_daemonize(opts.foreground);
			loop = fuse_loop_cfg_create();
			fuse_loop_cfg_set_clone_fd(loop, (unsigned)opts.clone_fd);
			fuse_loop_cfg_set_max_threads(loop, 64);
			r = fuse_session_loop_mt(se, loop) < 0;
			fuse_loop_cfg_destroy(loop);
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	if (se) {
		fuse_session_destroy(se);
	}
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return r;
}
