/* The auth engine as the FUSE layer sees it: targets, their files, metrics,
 * and the libraries it uses too (config, store, log). fs/ includes nothing
 * else of auth/. Nothing here speaks HTTP or FUSE. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lib/audit.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/store.h"

/* A file of a target directory, as its provider's file table describes it.
 * The engine and fs/ know a file by its index in that table and by its role;
 * only the provider knows what its session files hold. */
enum auth_file_role {
	AUTH_FILE_SESSION,     /* read: rendered from the session by the provider (may log in) */
	AUTH_FILE_STATUS,      /* read: the target's state, rendered by the engine from memory */
	AUTH_FILE_CREDENTIALS, /* write: credentials (the provider's parse_credentials), saved */
	AUTH_FILE_ONE_TIME,    /* write: a value the next login uses once (a one-time code) */
	AUTH_FILE_SESSIONS,    /* directory: the sessions on the server (the provider's sessions hooks) */
};

/* Flags of a file. */
#define AUTH_FILE_RESUME (1u << 0) /* a write is a session to resume (session_load, then validate) */
#define AUTH_FILE_LOGOUT (1u << 1) /* rm logs out and drops the session */
#define AUTH_FILE_LINES (1u << 2)  /* a write is key = value lines (INI), complete only at close */

/* One line of a provider's file table. */
struct auth_file_info {
	const char *name;
	mode_t mode;   /* S_IFREG|0400, S_IFREG|0200, S_IFDIR|0500, ... */
	enum auth_file_role role;
	unsigned flags;
	int id;        /* the provider's own tag for the file, for its render() */
	/* Optional: a write in progress is 0 when complete and valid, -ENODATA
	 * when more data may make it valid, -EINVAL when nothing can. Without
	 * it, the engine's check for the role (credentials, resume) applies. */
	int (*check)(const char *data, size_t len);
};

/* Files per provider: inode numbers leave room for this many. */
#define AUTH_FILES_MAX 15

#define AUTH_WRITE_MAX (64 * 1024)

/* Immutable content handed to readers; lives in the secure heap. */
struct auth_blob {
	unsigned refs;
	uint64_t gen; /* the target's session generation it was rendered from */
	time_t valid_until; /* session files: last moment it may be served (0: no limit) */
	size_t len;
	char data[];
};

struct auth_blob *auth_blob_new(const char *data, size_t len);
/* text plus a newline. */
struct auth_blob *auth_blob_new_line(const char *text);
struct auth_blob *auth_blob_ref(struct auth_blob *b);
void auth_blob_unref(struct auth_blob *b);

struct auth_core;
struct auth_target;

/* Once per process: makes jansson, libxml2 and libcurl wipe what they free,
 * starts HTTP, and loads the targets. */
int auth_core_new(const struct config *cfg, struct store *store, struct auth_core **ret);
int auth_core_start(struct auth_core *core); /* HTTP's worker and background refresh */
void auth_core_stop(struct auth_core *core);  /* stops it; before what it notifies goes away */
void auth_core_free(struct auth_core *core); /* stops, logs out where asked to, ends HTTP */

/* Called after a target's session changed (outside any lock): the FUSE layer
 * invalidates the kernel's cached pages of that target's files. */
void auth_core_set_notify(struct auth_core *core, void (*fn)(void *userdata, uint32_t target_id, uint64_t gen),
			  void *userdata);

size_t auth_provider_count(void);
const char *auth_provider_name(size_t provider);
int auth_provider_index(const char *name); /* -ENOENT if unknown */
/* The ranges of a provider's numeric settings, for config_load(); NULL if none. */
const struct config_range *auth_config_ranges(const char *provider);
const struct auth_file_info *auth_provider_files(size_t provider, size_t *ret_n);
/* The file named name, and its index in the table in *ret_index; NULL if none. */
const struct auth_file_info *auth_provider_file(size_t provider, const char *name, unsigned *ret_index);

/* Registry. Returned targets carry a reference; drop it with auth_target_unref(). */
struct auth_target *auth_target_lookup(struct auth_core *core, size_t provider, const char *name);
struct auth_target *auth_target_get(struct auth_core *core, uint32_t id);
/* The target with the smallest id > after, or NULL: a walk over every
 * target that targets added or removed meanwhile don't disturb. */
struct auth_target *auth_target_next(struct auth_core *core, uint32_t after);
/* Calls fn with the id and name of each of the provider's targets whose id
 * is > after, in order of id, until it returns false: a readdir cursor that
 * takes the registry's lock once per batch. fn runs under that (read) lock:
 * it must not block or call into the registry. */
void auth_target_list(struct auth_core *core, size_t provider, uint32_t after,
		      bool (*fn)(void *userdata, uint32_t id, const char *name), void *userdata);
void auth_target_unref(struct auth_target *t);
uint32_t auth_target_id(const struct auth_target *t);
const char *auth_target_name(const struct auth_target *t);
size_t auth_target_provider(const struct auth_target *t);

/* mkdir and rmdir. Any valid name; for providers whose targets are hosts
 * (AUTH_PROVIDER_HOST_NAMES) also host, host:port or [v6]:port. */
int auth_target_create(struct auth_core *core, size_t provider, const char *name, struct auth_target **ret);
int auth_target_destroy(struct auth_core *core, size_t provider, const char *name);
/* -EINVAL or -ENAMETOOLONG for a name that cannot be a target. */
int auth_name_valid(const char *name);

/* Files, by their index in the provider's table. read may log in (waits at most `timeout`); peek never touches the network
 * and returns -ENODATA when there is no session, -EAGAIN when the session is due
 * for renewal. */
int auth_file_read(struct auth_target *t, unsigned f, struct auth_blob **ret);
/* The same, without waiting: a read that needs a login registers and
 * returns AUTH_PENDING at once; done() is then called exactly once, from the
 * thread that ended the login, or from the deadline timer when `timeout`
 * passes first (r = -ETIMEDOUT; the login goes on), or at auth_core_stop()
 * (r = -ENOTCONN). done() gets r >= 0 with the blob (its reference), or
 * -errno and NULL. Otherwise the result is returned as auth_file_read()
 * returns it, and done() is never called. */
#define AUTH_PENDING 1
typedef void (*auth_read_done_fn)(void *userdata, int r, struct auth_blob *blob);
int auth_file_read_async(struct auth_target *t, unsigned f, auth_read_done_fn done, void *userdata,
			 struct auth_blob **ret);
int auth_file_peek(struct auth_target *t, unsigned f, struct auth_blob **ret);
/* The size the kernel holds for a session file: FUSE splices even a
 * direct-I/O file (sendfile(), copy_file_range()) through the page cache, up
 * to that size. told: the kernel was just told the size of a rendering of
 * generation gen (known), or a size that is no rendering's (!known: no
 * session). current: whether a rendering of generation gen has the size it
 * was last told. */
void auth_file_size_told(struct auth_target *t, unsigned f, uint64_t gen, bool known);
bool auth_file_size_current(struct auth_target *t, unsigned f, uint64_t gen);
/* A write of what a program wrote so far (since open). The value is applied
 * once, when complete: a JSON object when it closes, one line at its
 * newline, anything else at close (final). -ENODATA (nothing applied) while
 * more may complete it; -EINVAL for what nothing can mend, or what is
 * incomplete at close. Refusals show in status (last_error, last_write)
 * and the log, as close()'s errors are often ignored. */
int auth_file_write(struct auth_target *t, unsigned f, const char *data, size_t len, bool final);
int auth_file_unlink(struct auth_target *t, unsigned f);

/* Sessions on the server (an AUTH_FILE_SESSIONS directory): ids, one entry, delete. Deleting
 * one that is already gone succeeds. */
int auth_sessions_list(struct auth_target *t, char ***ret_ids, size_t *ret_n);
int auth_sessions_read(struct auth_target *t, const char *id, struct auth_blob **ret);
int auth_sessions_delete(struct auth_target *t, const char *id);
/* Is id on the server? 0 or -ENOENT, from a listing at most a few seconds
 * old, listed again for an id not in it (at most once a second); may wait
 * for the network (within timeout). */
int auth_sessions_exists(struct auth_target *t, const char *id);
/* A stable small number for a session id (for inode numbers), and back. */
int auth_sessions_slot(struct auth_target *t, const char *id);
char *auth_sessions_id(struct auth_target *t, unsigned slot);
bool auth_session_id_valid(const char *id);
void auth_strv_free(char **v, size_t n);

/* Owner and mode of a target's files (f) or its directory (f = AUTH_TARGET_DIR):
 * from chown/chmod (saved in the state dir), else the config's [access]
 * section. Fields not set there are left as they are. */
#define AUTH_TARGET_DIR AUTH_FILES_MAX
int auth_file_access(struct auth_target *t, int f, uid_t *uid, gid_t *gid, mode_t *mode);
/* chown/chmod: (uid_t)-1, (gid_t)-1, (mode_t)-1 leave a field unchanged. */
int auth_file_set_access(struct auth_target *t, int f, uid_t uid, gid_t gid, mode_t mode);

/* [access] rules with unit: or cgroup: (cgroup.h): does any exist, and may
 * caller c open file f of t, or .metrics (0, or -EACCES)? Checked at each
 * open. */
bool auth_core_checks_callers(const struct auth_core *core);
int auth_file_check_caller(struct auth_target *t, int f, const struct caller *c);
int auth_metrics_check_caller(struct auth_core *core, const struct caller *c);

/* Owner and mode of .metrics: the config's [access] rules for ".metrics";
 * fields not set there are left as they are (default: 0400, the daemon's). */
void auth_metrics_access(struct auth_core *core, uid_t *uid, gid_t *gid, mode_t *mode);

/* Prometheus text exposition of every counter; never touches the network. */
int auth_core_metrics(struct auth_core *core, struct auth_blob **ret);
