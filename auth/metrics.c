/* .metrics: Prometheus text exposition (format 0.0.4) of every target's counters. */
#include <errno.h>
#include <stdio.h>

#include "target.h"

struct metric {
	const char *name;
	const char *type;
	const char *help;
};

static const struct metric metrics[] = {
	{ "sessionfs_logins_total", "counter", "Logins that succeeded." },
	{ "sessionfs_failures_total", "counter", "Logins and refreshes that failed." },
	{ "sessionfs_refreshes_total", "counter", "Background refreshes that succeeded." },
	{ "sessionfs_reads_total", "counter", "Reads of session files." },
	{ "sessionfs_session_expiry_seconds", "gauge", "Seconds until the session expires (absent: no session or no expiry)." },
};

/* Label values escape backslash, double quote and newline. */
static void put_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"') {
			fputc('\\', f);
			fputc(*v, f);
		} else if (*v == '\n') {
			fputs("\\n", f);
		} else {
			fputc(*v, f);
		}
	}
}

static void put_sample(FILE *f, const char *metric, const struct auth_target *t, long long value)
{
	fprintf(f, "%s{provider=\"%s\",target=\"", metric, t->provider->name);
	put_label(f, t->name);
	fprintf(f, "\"} %lld\n", value);
}

static void put_target(FILE *f, size_t m, struct auth_target *t)
{
	struct target_counters c;
	time_t exp;

	pthread_mutex_lock(&t->lock);
	c = t->counters;
	exp = t->session ? t->session->expires_at : 0;
	pthread_mutex_unlock(&t->lock);
	switch (m) {
	case 0:
		put_sample(f, metrics[m].name, t, (long long)c.logins);
		break;
	case 1:
		put_sample(f, metrics[m].name, t, (long long)c.failures);
		break;
	case 2:
		put_sample(f, metrics[m].name, t, (long long)c.refreshes);
		break;
	case 3:
		put_sample(f, metrics[m].name, t, (long long)c.reads);
		break;
	default:
		if (exp) {
			put_sample(f, metrics[m].name, t, (long long)(exp - now_real()));
		}
	}
}

int auth_core_metrics(struct auth_core *core, struct auth_blob **ret)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f) {
		return -ENOMEM;
	}
	for (size_t m = 0; m < ELEMENTSOF(metrics); m++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help, metrics[m].name, metrics[m].type);
		for (uint32_t after = 0;;) {
			struct auth_target *t = auth_target_next(core, AUTH_ANY_PROVIDER, after);
			if (!t) {
				break;
			}
			put_target(f, m, t);
			after = t->id;
			auth_target_unref(t);
		}
	}
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	*ret = auth_blob_new(text, len);
	free(text);
	return *ret ? 0 : -ENOMEM;
}
