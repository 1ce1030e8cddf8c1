/* The INI config (DESIGN.md §2), parsed with libinih. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "secret.h"

/* One "key = value" line of a target section, kept for its provider. */
struct config_kv {
	char *key;
	char *value;
	long number;  /* the value, parsed and range-checked, for a numeric key */
	bool numeric; /* the key has a range (config.c's table or the provider's) */
};

/* A [provider "name"] section; a [provider] section without a name holds the
 * defaults for that provider's targets (mkdir, environment). */
struct target_config {
	char *provider;
	char *name;
	struct config_kv *kv;
	size_t n_kv;
};

/* An [access] line: "aos/lab/token = uid:1001 gid:1001 mode:0440". */
struct access_rule {
	char *path;
	uid_t uid;
	gid_t gid;
	mode_t mode;
	bool has_uid, has_gid, has_mode;
	/* "unit:NAME" and "cgroup:PREFIX": when any, only a caller matching one
	 * of them may open the file (checked at each open, besides the mode). */
	char **callers;
	size_t n_callers;
};

struct config_range;
struct sections;

struct config {
	char *state_dir;
	int timeout;        /* seconds a read may wait for the network */
	int refresh_margin; /* seconds before expiry a session is refreshed */
	int check_interval; /* seconds between checks that a hot session is still accepted */
	struct target_config *targets;
	size_t n_targets;
	struct target_config *defaults; /* the unnamed provider sections */
	size_t n_defaults;
	struct access_rule *access;
	size_t n_access;
	bool access_callers; /* some [access] rule has unit: or cgroup: */
	char *audit_log;        /* audit events to this file (NULL: none) */
	int audit_log_max_size; /* bytes before it is rotated */
	int audit_log_keep;     /* rotated files kept */
	int audit_queue;        /* events waiting to be written, at most */
	bool audit_journal;     /* and/or to the journal */
	bool audit_required;    /* no secret served when its event cannot be recorded */
	bool page_cache;        /* read-only session files through the page cache (fs/pagecache.c) */
	char error[256]; /* while parsing: what is wrong with the first bad line */
	const struct config_range *(*ranges)(const char *provider); /* while parsing */
	struct sections *sections; /* while parsing: sections by provider and name (config.c) */
};

#define CONFIG_DEFAULT_STATE_DIR "/var/lib/sessionfs"
#define CONFIG_DEFAULT_TIMEOUT 30
#define CONFIG_DEFAULT_REFRESH_MARGIN 300
#define CONFIG_DEFAULT_CHECK_INTERVAL 60
#define CONFIG_DEFAULT_AUDIT_LOG_MAX_SIZE (10 * 1024 * 1024)
#define CONFIG_DEFAULT_AUDIT_LOG_KEEP 5
#define CONFIG_DEFAULT_AUDIT_QUEUE 4096

/* The range of a numeric setting of a provider's sections: checked while
 * the file is read, so that an error names the line. */
struct config_range {
	const char *key; /* NULL ends a list */
	long min, max;
};
/* The ranges of a provider's settings, or NULL (the providers' tables). */
typedef const struct config_range *(*config_ranges_fn)(const char *provider);

/* path NULL: built-in defaults only. ranges may be NULL. */
int config_load(const char *path, config_ranges_fn ranges, struct config **ret);
int config_parse_string(const char *text, config_ranges_fn ranges, struct config **ret);
void config_free(struct config *c);

const char *target_config_get(const struct target_config *t, const char *key);
/* The value of a numeric key (timeout, port, a provider's ranges), as parsed
 * and range-checked when the config was read: 0, -ENOENT when not set (or t
 * is NULL), -EINVAL when key has no range. */
int target_config_get_number(const struct target_config *t, const char *key, long *ret);
/* Parses value as the numeric key of a provider's section (e.g. "port" from
 * a target's name or the environment) with the range a config file gets:
 * -EINVAL when out of it, -ENOENT for a key without one. */
int config_parse_number(const char *key, const char *value, long *ret);
const struct target_config *config_find_defaults(const struct config *c, const char *provider);

/* Parses "true/false/yes/no/1/0/on/off". -EINVAL otherwise. */
int parse_bool(const char *s, bool *ret);
/* Parses a decimal integer in [min, max]. */
int parse_int(const char *s, long min, long max, long *ret);
int access_rule_parse(const char *path, const char *value, struct access_rule *ret);
void access_rule_done(struct access_rule *a);

/* Resolves password / password_file / password_env of a section. -ENOENT when
 * none is set; -EINVAL when the named file or variable is missing. */
int config_resolve_secret(const struct target_config *t, const char *prefix, struct secret **ret);
/* Reads a secret file: O_NOFOLLOW, refuses group/world-readable files. */
int read_secret_file(const char *path, struct secret **ret);
