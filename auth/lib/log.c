/* Log lines go to stderr with a level and the calling function. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static _Atomic int max_level = LOG_LEVEL_INFO;
static _Atomic bool use_syslog;

void log_to_syslog(void)
{
	openlog("sessionfs", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

void log_set_level(enum log_level level)
{
	max_level = level;
}

enum log_level log_get_level(void)
{
	return max_level;
}

int log_full_errno(enum log_level level, int r, const char *func, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1024];
	va_list ap;

	if ((int)level > max_level) {
		return r;
	}
	errno = r < 0 ? -r : r; /* for %m */
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (use_syslog) {
		static const int priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		syslog(priorities[level], "%s", line);
	} else if (level == LOG_LEVEL_DEBUG) {
		fprintf(stderr, "sessionfs[%s] %s: %s\n", names[level], func, line);
	} else {
		fprintf(stderr, "sessionfs[%s]: %s\n", names[level], line);
	}
	return r;
}
