/* Logging to stderr (journald picks it up). Never pass a secret here: log "***". */
#pragma once

#include <errno.h>

#include "util.h"

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* From now on, log to syslog (the daemon has no terminal any more). */
void log_to_syslog(void);

/* Logs and returns r (a -errno); %m in fmt prints strerror(-r). */
int log_full_errno(enum log_level level, int r, const char *func, const char *fmt, ...) _printf_(4, 5);

#define log_error_errno(r, ...) log_full_errno(LOG_LEVEL_ERROR, (r), __func__, __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_LEVEL_WARNING, (r), __func__, __VA_ARGS__)
#define log_info_errno(r, ...) log_full_errno(LOG_LEVEL_INFO, (r), __func__, __VA_ARGS__)
#define log_debug_errno(r, ...) log_full_errno(LOG_LEVEL_DEBUG, (r), __func__, __VA_ARGS__)
#define log_error(...) (void)log_full_errno(LOG_LEVEL_ERROR, 0, __func__, __VA_ARGS__)
#define log_warning(...) (void)log_full_errno(LOG_LEVEL_WARNING, 0, __func__, __VA_ARGS__)
#define log_info(...) (void)log_full_errno(LOG_LEVEL_INFO, 0, __func__, __VA_ARGS__)
#define log_debug(...) (void)log_full_errno(LOG_LEVEL_DEBUG, 0, __func__, __VA_ARGS__)
