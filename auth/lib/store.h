/* The state dir: saved credentials, resumable sessions and mkdir'd targets,
 * one directory per target (<state_dir>/<provider>/<name>/<item>). */
#pragma once

#include <stddef.h>

#include "secret.h"

struct store;

/* Creates the dir (0700) if needed. Refuses, with a log line naming the path
 * and the problem, a dir that is not the daemon user's and private, or one
 * reached through a symlink or a dir others may write to. */
int store_open(const char *dir, struct store **ret);
void store_free(struct store *s);
/* The state dir's absolute path, as checked. */
const char *store_path(const struct store *s);

/* Every failure of save and remove is logged here, with the path and the
 * problem: callers decide what it means, and do not log it again. */

/* Atomic: temp file, fsync, rename, fsync dir. Files are 0600. */
int store_save(struct store *s, const char *provider, const char *name, const char *item,
	       const char *data, size_t len);
/* -ENOENT when absent; -EBADMSG (logged, with the path and the problem) when
 * it or a dir on the way is untrusted or it is too large. The content is
 * returned as a secret. */
int store_load(struct store *s, const char *provider, const char *name, const char *item,
	       struct secret **ret);
int store_remove(struct store *s, const char *provider, const char *name, const char *item);
/* Removes the whole target dir. */
int store_remove_target(struct store *s, const char *provider, const char *name);

/* 0 if every dir and file of the target's state is trusted, -ENOENT if
 * there is none; else -EBADMSG with why set to "<path>: <problem>" (not
 * logged). */
int store_check_target(struct store *s, const char *provider, const char *name, char *why, size_t size);

/* Calls fn for every target dir under <state_dir>/<provider>/ that holds item;
 * untrusted dirs and files are skipped with a log line. */
int store_list(struct store *s, const char *provider, const char *item,
	       void (*fn)(const char *name, void *userdata), void *userdata);
