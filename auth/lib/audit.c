/* Audit events (audit.h): copied where they happen, queued, formatted and
 * written by one thread to a rotated file and/or the journal. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif

#include "audit.h"
#include "log.h"

#define LINE_MAX_BYTES 32768 /* room for an event's fields escaped (6 bytes for a control character) */

static struct {
	bool on, started, stop, required, journal;
	bool idle, gathering; /* the writer waits for a first event, for more */
	char *path;
	long max_size, keep;
	int fd;
	off_t size;

	pthread_mutex_t lock; /* the queue, the counters and the error */
	pthread_cond_t cond;
	struct record **queue; /* a ring */
	size_t head, len, cap;
	uint64_t dropped, written;
	int error;            /* the last write's: 0 or -errno */
	char problem[256];
	char refused[256];    /* why a secret was last refused (audit_required) */
	time_t refused_at;
	pthread_t thread;
} A = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n < o->size) {
		memcpy(o->buf + o->len, s, n);
	}
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (up to end), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;

	if (n == 0 || (size_t)(end - s) < n) {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			return 0;
		}
	}
	return n;
}

/* A JSON string; control characters escaped, invalid UTF-8 as U+FFFD. */
static void put_string(struct out *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);

	put(o, "\"", 1);
	while (p < end) {
		char esc[8];
		size_t n;
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p++;
			put(o, esc, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p++);
			put(o, esc, 6);
		} else if (*p < 0x80) {
			put(o, (const char *)p++, 1);
		} else if ((n = utf8_len(p, end)) > 0) {
			put(o, (const char *)p, n);
			p += n;
		} else {
			puts_(o, "\\ufffd");
			p++;
		}
	}
	put(o, "\"", 1);
}

static void put_field(struct out *o, const char *key, const char *value)
{
	put(o, ",\"", 2);
	puts_(o, key);
	put(o, "\":", 2);
	if (value && *value) {
		put_string(o, value);
	} else {
		puts_(o, "null");
	}
}

static void put_number(struct out *o, const char *key, long long v)
{
	char num[32];

	snprintf(num, sizeof(num), ",\"%s\":%lld", key, v);
	puts_(o, num);
}

int audit_format(const struct audit_event *e, double when, char *buf, size_t size)
{
	struct out o = { .buf = buf, .size = size };
	char stamp[40], frac[16];
	time_t sec = (time_t)when;
	struct tm tm;

	gmtime_r(&sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(frac, sizeof(frac), ".%06ldZ", (long)((when - (double)sec) * 1e6));
	puts_(&o, "{\"time\":\"");
	puts_(&o, stamp);
	puts_(&o, frac);
	put(&o, "\"", 1);
	put_field(&o, "target", e->target);
	put_field(&o, "file", e->file);
	put_field(&o, "op", e->op);
	put_field(&o, "result", e->result < 0 ? strerrorname_np(-e->result) ?: "error" : "ok");
	if (e->caller) {
		put_number(&o, "uid", e->caller->uid);
		put_number(&o, "gid", e->caller->gid);
		put_number(&o, "pid", e->caller->pid);
		put_field(&o, "exe", e->caller->exe);
		put_field(&o, "unit", e->caller->unit);
		put_field(&o, "cgroup", e->caller->cgroup);
		put_field(&o, "container", e->caller->container);
		put_field(&o, "pod", e->caller->pod);
	}
	if (e->server) {
		put_field(&o, "server", e->server);
	}
	if (e->detail) {
		put_field(&o, "detail", e->detail);
	}
	put(&o, "}", 1);
	if (o.len >= size) {
		return -ENOBUFS;
	}
	buf[o.len] = 0;
	return (int)o.len;
}

/* An event as queued: its fields copied as they are, so that the caller's
 * thread does no formatting (the writer does). */
enum { S_TARGET, S_FILE, S_OP, S_SERVER, S_DETAIL, S_EXE, S_CGROUP, S_UNIT, S_CONTAINER, S_POD, S_N };

struct record {
	double when;
	int result;
	bool has_caller;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint16_t at[S_N]; /* where each string starts in text, plus 1; 0: NULL */
	char text[];
};

static struct record *record_new(const struct audit_event *e, double when)
{
	const struct caller *c = e->caller;
	const char *s[S_N] = { e->target, e->file, e->op, e->server, e->detail, c ? c->exe : NULL,
			       c ? c->cgroup : NULL, c ? c->unit : NULL, c ? c->container : NULL, c ? c->pod : NULL };
	size_t len[S_N], total = 0;
	struct record *r;

	for (size_t i = 0; i < S_N; i++) {
		len[i] = s[i] ? strnlen(s[i], 4095) : 0; /* caller strings are shorter; targets and files too */
		total += s[i] ? len[i] + 1 : 0;
	}
	r = malloc(sizeof(*r) + total);
	if (!r) {
		return NULL;
	}
	*r = (struct record){ .when = when, .result = e->result, .has_caller = c != NULL };
	if (c) {
		r->pid = c->pid;
		r->uid = c->uid;
		r->gid = c->gid;
	}
	total = 0;
	for (size_t i = 0; i < S_N; i++) {
		if (s[i]) {
			memcpy(r->text + total, s[i], len[i]);
			r->text[total + len[i]] = 0;
			r->at[i] = (uint16_t)(total + 1);
			total += len[i] + 1;
		}
	}
	return r;
}

static const char *record_str(const struct record *r, int i)
{
	return r->at[i] ? r->text + r->at[i] - 1 : NULL;
}

/* r's line, into buf (see audit_format). */
static int record_format(const struct record *r, char *buf, size_t size)
{
	struct caller c = { .pid = r->pid, .uid = r->uid, .gid = r->gid };
	char *const into[] = { c.exe, c.cgroup, c.unit, c.container, c.pod };
	const size_t sizes[] = { sizeof(c.exe), sizeof(c.cgroup), sizeof(c.unit), sizeof(c.container), sizeof(c.pod) };

	for (int i = S_EXE; i < S_N; i++) {
		snprintf(into[i - S_EXE], sizes[i - S_EXE], "%s", record_str(r, i) ?: "");
	}
	return audit_format(&(struct audit_event){ .target = record_str(r, S_TARGET), .file = record_str(r, S_FILE),
						   .op = record_str(r, S_OP), .result = r->result,
						   .caller = r->has_caller ? &c : NULL, .server = record_str(r, S_SERVER),
						   .detail = record_str(r, S_DETAIL) },
			    r->when, buf, size);
}

static int open_log(void)
{
	struct stat st;

	A.fd = open(A.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (A.fd < 0) {
		return -errno;
	}
	if (fstat(A.fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(A.fd);
		A.fd = -1;
		return -EPERM; /* someone else's file, or readable by others: not ours to append secrets' traces to */
	}
	A.size = st.st_size;
	return 0;
}

int audit_open(const struct audit_settings *s)
{
	int r;

	A.required = s->required;
	A.journal = s->journal;
	A.max_size = s->max_size;
	A.keep = s->keep;
	A.cap = s->queue > 0 ? (size_t)s->queue : 1;
	if (!s->log_path && !s->journal) {
		if (s->required) {
			return log_error_errno(-EINVAL, "audit_required = true but no audit sink (audit_log, audit_journal)");
		}
		return 0;
	}
#ifdef HAVE_LIBSYSTEMD
	if (s->journal && access("/run/systemd/journal/socket", W_OK) < 0) {
		return log_error_errno(-ENOENT, "audit_journal = true but no journal here (/run/systemd/journal/socket)");
	}
#else
	if (s->journal) {
		return log_error_errno(-EOPNOTSUPP, "audit_journal = true but sessionfs was built without libsystemd");
	}
#endif
	A.queue = calloc(A.cap, sizeof(*A.queue));
	if (!A.queue) {
		return -ENOMEM;
	}
	if (s->log_path) {
		A.path = strdup(s->log_path);
		if (!A.path) {
			return -ENOMEM;
		}
		r = open_log();
		if (r < 0) {
			return log_error_errno(r, "Failed to open audit log %s (a regular file of the daemon's user, 0600): %m",
					       A.path);
		}
	}
	A.on = true;
	return 0;
}

bool audit_enabled(void)
{
	return A.on;
}

bool audit_required(void)
{
	return A.on && A.required;
}

/* PATH.keep goes, PATH.N becomes PATH.N+1, PATH becomes PATH.1. */
static int rotate(void)
{
	char from[4200], to[4200];

	close(A.fd);
	A.fd = -1;
	for (long i = A.keep; i >= 1; i--) {
		snprintf(to, sizeof(to), "%s.%ld", A.path, i);
		if (i == 1) {
			snprintf(from, sizeof(from), "%s", A.path);
		} else {
			snprintf(from, sizeof(from), "%s.%ld", A.path, i - 1);
		}
		if (rename(from, to) < 0 && errno != ENOENT) {
			return -errno;
		}
	}
	if (A.keep == 0 && unlink(A.path) < 0 && errno != ENOENT) {
		return -errno;
	}
	return open_log();
}

/* Lines to the file, as few writev() as rotation allows. */
static int write_file(char **lines, size_t n)
{
	struct iovec iov[2 * 64];
	size_t k = 0;
	off_t batch = 0;
	int r = 0;

	for (size_t i = 0; i <= n && r == 0; i++) {
		size_t len = i < n ? strlen(lines[i]) : 0;
		bool full = i == n || k == ELEMENTSOF(iov) ||
			    (A.size + batch > 0 && A.size + batch + (off_t)len + 1 > A.max_size);
		if (full && k > 0) {
			if (writev(A.fd, iov, (int)k) != (ssize_t)batch) {
				r = errno ? -errno : -EIO;
				break;
			}
			A.size += batch;
			k = 0;
			batch = 0;
		}
		if (i == n) {
			break;
		}
		if (A.fd < 0 || (A.size > 0 && A.size + (off_t)len + 1 > A.max_size)) {
			r = rotate();
		}
		iov[k++] = (struct iovec){ lines[i], len };
		iov[k++] = (struct iovec){ "\n", 1 };
		batch += (off_t)len + 1;
	}
	return r;
}

#ifdef HAVE_LIBSYSTEMD
/* The event's members as SESSIONFS_<KEY>= fields, and a MESSAGE. */
static int write_journal(const char *line)
{
	json_auto_t *j = json_loads(line, 0, NULL);
	struct iovec iov[24];
	char *fields[24];
	size_t n = 0;
	const char *key;
	json_t *v;
	int r;

	if (!j) {
		return -EBADMSG;
	}
	json_object_foreach(j, key, v) {
		char *f = NULL, *up;
		if (n >= ELEMENTSOF(iov) - 2) {
			break;
		}
		if (json_is_string(v)) {
			r = asprintf(&f, "SESSIONFS_%s=%s", key, json_string_value(v));
		} else if (json_is_integer(v)) {
			r = asprintf(&f, "SESSIONFS_%s=%lld", key, (long long)json_integer_value(v));
		} else {
			continue;
		}
		if (r < 0) {
			break;
		}
		for (up = f + 10; *up != '='; up++) {
			*up = (char)(*up >= 'a' && *up <= 'z' ? *up - 32 : *up);
		}
		fields[n] = f;
		iov[n] = (struct iovec){ f, strlen(f) };
		n++;
	}
	r = asprintf(&fields[n], "MESSAGE=sessionfs audit: %s", line);
	if (r >= 0) {
		iov[n] = (struct iovec){ fields[n], strlen(fields[n]) };
		n++;
		iov[n++] = (struct iovec){ "PRIORITY=6", 10 };
		r = sd_journal_sendv(iov, (int)n);
		n--;
	} else {
		r = -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		free(fields[i]);
	}
	return r;
}
#endif

static int write_lines(char **lines, size_t n)
{
	int r = 0;

	if (A.path) {
		r = write_file(lines, n);
	}
#ifdef HAVE_LIBSYSTEMD
	for (size_t i = 0; A.journal && i < n; i++) {
		int q = write_journal(lines[i]);
		r = r < 0 ? r : q;
	}
#endif
	return r;
}

/* Waits for a batch (lock held): the first event, then up to BATCH_WAIT for
 * more unless the queue is half full, so that a busy reader costs the
 * writer a wake-up per batch, not per event. */
#define BATCH_WAIT_NS 20000000L

static void wait_batch(void)
{
	struct timespec ts;

	while (A.len == 0 && !A.stop) {
		A.idle = true;
		pthread_cond_wait(&A.cond, &A.lock);
		A.idle = false;
	}
	if (A.len > 0 && A.len < A.cap / 2 && !A.stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += BATCH_WAIT_NS;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		A.gathering = true;
		pthread_cond_timedwait(&A.cond, &A.lock, &ts);
		A.gathering = false;
	}
}

/* Formats and writes n records (lines: room for n); how many could not be
 * formatted (too long, no memory) in *ret_lost: they count as dropped. */
static int write_records(struct record **recs, char **lines, size_t n, size_t *ret_lost)
{
	static char buf[LINE_MAX_BYTES]; /* the writer's, or audit_close()'s once it is gone */
	size_t k = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		int len = record_format(recs[i], buf, sizeof(buf));
		if (len >= 0 && (lines[k] = strndup(buf, (size_t)len))) {
			k++;
		}
	}
	r = k > 0 ? write_lines(lines, k) : 0;
	for (size_t i = 0; i < k; i++) {
		free(lines[i]);
	}
	*ret_lost = n - k;
	return r;
}

static void *writer(void *arg)
{
	struct record **batch = calloc(A.cap, sizeof(*batch));
	char **lines = calloc(A.cap, sizeof(*lines));

	(void)arg;
	pthread_mutex_lock(&A.lock);
	for (;;) {
		struct record *one, **recs = batch && lines ? batch : &one;
		char *line, **out = batch && lines ? lines : &line;
		size_t n = 0, lost;
		int r;
		wait_batch();
		if (A.len == 0) {
			break;
		}
		do { /* everything queued; one at a time if there was no room for a batch */
			recs[n++] = A.queue[A.head];
			A.head = (A.head + 1) % A.cap;
			A.len--;
		} while (recs != &one && A.len > 0);
		pthread_mutex_unlock(&A.lock);
		r = write_records(recs, out, n, &lost);
		for (size_t i = 0; i < n; i++) {
			free(recs[i]);
		}
		pthread_mutex_lock(&A.lock);
		if (r < 0 && A.error == 0) {
			snprintf(A.problem, sizeof(A.problem), "audit events cannot be written (%s): %s",
				 A.path ? A.path : "journal", strerror(-r));
			log_error("%s", A.problem);
		} else if (r == 0 && A.error < 0) {
			log_info("Audit events are written again");
		}
		A.error = r;
		A.dropped += lost;
		if (r == 0) {
			A.written += n - lost;
		}
	}
	pthread_mutex_unlock(&A.lock);
	free(batch);
	free(lines);
	return NULL;
}

int audit_start(void)
{
	int r;

	if (!A.on || A.started) {
		return 0;
	}
	r = -pthread_create(&A.thread, NULL, writer, NULL);
	if (r < 0) {
		return log_error_errno(r, "Failed to start the audit writer: %m");
	}
	pthread_setname_np(A.thread, "sessionfs-audit"); /* for ps, and the tests that freeze it */
	A.started = true;
	return 0;
}

void audit_close(void)
{
	bool on;

	if (A.started) {
		pthread_mutex_lock(&A.lock);
		A.stop = true;
		pthread_cond_signal(&A.cond);
		pthread_mutex_unlock(&A.lock);
		pthread_join(A.thread, NULL);
		A.started = false;
	}
	pthread_mutex_lock(&A.lock);
	on = A.on;
	A.on = false; /* from now on, events are ignored */
	pthread_mutex_unlock(&A.lock);
	for (; A.len > 0; A.len--, A.head = (A.head + 1) % A.cap) {
		char *line;
		size_t lost;
		if (on) {
			write_records(&A.queue[A.head], &line, 1, &lost); /* never started (no mount): still recorded */
		}
		free(A.queue[A.head]);
	}
	if (A.fd >= 0) {
		close(A.fd);
		A.fd = -1;
	}
	free(A.queue);
	free(A.path);
	A.queue = NULL;
	A.path = NULL;
}

int audit_emit(const struct audit_event *e)
{
	struct timespec ts;
	struct record *rec;
	int r;

	if (!A.on) {
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	rec = record_new(e, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	pthread_mutex_lock(&A.lock);
	if (!A.on) { /* closed meanwhile (exit): a login thread's late event */
		r = 0;
		free(rec);
	} else if (!rec || A.len == A.cap) {
		A.dropped++;
		snprintf(A.problem, sizeof(A.problem), "audit queue full (%zu events): %llu events dropped", A.cap,
			 (unsigned long long)A.dropped);
		r = -ENOBUFS;
		free(rec);
	} else {
		A.queue[(A.head + A.len) % A.cap] = rec;
		A.len++;
		/* Wake the writer for the first event of a batch, and when half full. */
		if ((A.idle && A.len == 1) || (A.gathering && A.len == A.cap / 2) || A.cap == 1) {
			pthread_cond_signal(&A.cond);
		}
		r = A.error < 0 ? -EIO : 0;
	}
	pthread_mutex_unlock(&A.lock);
	return r;
}

uint64_t audit_dropped(void)
{
	uint64_t n;

	pthread_mutex_lock(&A.lock);
	n = A.dropped;
	pthread_mutex_unlock(&A.lock);
	return n;
}

uint64_t audit_written(void)
{
	uint64_t n;

	pthread_mutex_lock(&A.lock);
	n = A.written;
	pthread_mutex_unlock(&A.lock);
	return n;
}

void audit_note_refusal(const char *why)
{
	pthread_mutex_lock(&A.lock);
	snprintf(A.refused, sizeof(A.refused), "%s", why);
	A.refused_at = time(NULL);
	pthread_mutex_unlock(&A.lock);
}

time_t audit_last_refusal(char *buf, size_t size)
{
	time_t at;

	pthread_mutex_lock(&A.lock);
	at = A.refused_at;
	snprintf(buf, size, "%s", A.refused);
	pthread_mutex_unlock(&A.lock);
	return at;
}

bool audit_problem(char *buf, size_t size)
{
	bool problem;

	pthread_mutex_lock(&A.lock);
	problem = A.on && (A.error < 0 || A.len == A.cap);
	if (A.error < 0) {
		snprintf(buf, size, "%s", A.problem);
	} else if (problem) {
		snprintf(buf, size, "audit queue full (%zu events not written yet); %llu dropped so far", A.cap,
			 (unsigned long long)A.dropped);
	}
	pthread_mutex_unlock(&A.lock);
	return problem;
}
