/* The state dir: saved credentials, resumable sessions and mkdir'd targets,
 * one directory per target (<state_dir>/<provider>/<name>/<item>). */
#pragma once

#include <stddef.h>

#include "secret.h"

struct store;

/* Creates the dir (0700) if needed; refuses one readable by others. */
int store_open(const char *dir, struct store **ret);
void store_free(struct store *s);

/* Atomic: temp file, fsync, rename, fsync dir. Files are 0600. */
int store_save(struct store *s, const char *provider, const char *name, const char *item,
	       const char *data, size_t len);
/* -ENOENT when absent. The content is returned as a secret. */
int store_load(struct store *s, const char *provider, const char *name, const char *item,
	       struct secret **ret);
int store_remove(struct store *s, const char *provider, const char *name, const char *item);
/* Removes the whole target dir. */
int store_remove_target(struct store *s, const char *provider, const char *name);

/* Calls fn for every target dir under <state_dir>/<provider>/ that holds item. */
int store_list(struct store *s, const char *provider, const char *item,
	       void (*fn)(const char *name, void *userdata), void *userdata);
