/* Audit events: one JSON object per line, to a file (rotated) and/or the
 * journal, through a bounded queue drained by one thread, so that recording
 * an event never blocks a read. No secret is ever part of an event. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cgroup.h"

struct audit_settings {
	const char *log_path; /* NULL: no file sink */
	long max_size;        /* rotate the file before it passes this many bytes */
	long keep;            /* rotated files kept: PATH.1 .. PATH.keep */
	bool journal;         /* sd_journal_send(), built with libsystemd and under systemd */
	bool required;        /* a secret is not served when its event cannot be recorded */
	long queue;           /* events waiting to be written, at most */
};

/* One event. caller NULL for the engine's own acts (login, renewal, ...);
 * result 0 or -errno. Strings may be NULL (left out). */
struct audit_event {
	const char *target; /* "provider/name" */
	const char *file;
	const char *op;     /* open, write, rm, mkdir, rmdir, chmod, chown, login, renewal, logout, session_delete */
	int result;
	const struct caller *caller;
	const char *server; /* engine events: scheme://host:port */
	const char *detail; /* chmod/chown: the new mode or owner */
};

/* Opens the sinks (the file is created 0600; it must be a regular file of
 * ours); nothing when neither is set. Before any thread: the writer starts
 * with audit_start(), after daemonizing. */
int audit_open(const struct audit_settings *s);
int audit_start(void);
/* Writes what is queued, stops the writer, closes the sinks. */
void audit_close(void);

bool audit_enabled(void);
bool audit_required(void);
/* Queues e: 0; -ENOBUFS when the queue is full (the event is dropped and
 * counted); -EIO when the sinks failed to write the last event (it is queued
 * all the same). */
int audit_emit(const struct audit_event *e);
uint64_t audit_dropped(void);
uint64_t audit_written(void);
/* Why events cannot be recorded now, in words, or false. */
bool audit_problem(char *buf, size_t size);

/* A secret was refused because its event could not be recorded: why, for
 * status; and the last such refusal (0: none). */
void audit_note_refusal(const char *why);
time_t audit_last_refusal(char *buf, size_t size);

/* The line for e, without the newline, into buf: its length, or -ENOBUFS.
 * (the writer's formatting, for the tests.) */
int audit_format(const struct audit_event *e, double when, char *buf, size_t size);
