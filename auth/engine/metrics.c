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
	{ "sessionfs_refreshes_total", "counter", "Background refreshes that succeeded (no reader waited)." },
	{ "sessionfs_reads_total", "counter", "Reads of session files that reached the daemon (page-cache hits are not seen)." },
	{ "sessionfs_reader_waits_total", "counter", "Reads that had to wait for the network." },
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
	long long values[ELEMENTSOF(metrics)];
	time_t exp;

	pthread_mutex_lock(&t->lock);
	values[0] = (long long)t->counters.logins;
	values[1] = (long long)t->counters.failures;
	values[2] = (long long)t->counters.refreshes;
	values[3] = (long long)t->counters.reads;
	values[4] = (long long)t->counters.reader_waits;
	exp = t->session ? t->session->expires_at : 0;
	pthread_mutex_unlock(&t->lock);
	values[5] = (long long)(exp - now_real());
	if (m < 5 || exp) { /* no expiry, no sample */
		put_sample(f, metrics[m].name, t, values[m]);
	}
}

int auth_core_metrics(struct auth_core *core, struct auth_blob **ret)
{
	struct auth_blob *b;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f) {
		return -ENOMEM;
	}
	for (size_t m = 0; m < ELEMENTSOF(metrics); m++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help, metrics[m].name, metrics[m].type);
		for (uint32_t after = 0;;) {
			struct auth_target *t = auth_target_next(core, after);
			if (!t) {
				break;
			}
			put_target(f, m, t);
			after = t->id;
			auth_target_unref(t);
		}
	}
	fleet_metrics(core->fleet, f);
	audit_metrics(f);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	b = auth_blob_new(text, len);
	free(text);
	if (!b) {
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}
