/* What reading, writing and removing each file of a target does. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "lib/log.h"
#include "target.h"

static const char *state_name(const struct auth_target *t)
{
	time_t now = now_real();

	if (t->flight) {
		return "logging_in";
	}
	if (t->session && (t->session->expires_at == 0 || t->session->expires_at > now)) {
		return "valid";
	}
	if (t->rejected) {
		return t->last_errno == -EBADMSG ? "error" : "rejected"; /* an untrusted state file */
	}
	if (t->last_errno == -ENOKEY) {
		return "no_credentials";
	}
	if (t->last_errno < 0) {
		return "error";
	}
	return t->session ? "expired" : "logged_out";
}

/* status: JSON from memory only (lock held). */
static int render_status(struct auth_target *t, struct auth_blob **ret)
{
	char exp[21], login[21], err_at[21];
	json_auto_t *j = NULL;
	_cleanup_free_ char *text = NULL;
	struct auth_blob *b;

	j = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:b, s:s?, s:{s:I, s:I, s:I, s:I, s:I}}",
		      "target", t->name, "provider", t->provider->name, "server", t->info.base_url,
		      "state", state_name(t),
		      "expires_at", t->session && t->session->expires_at ? format_iso8601(t->session->expires_at, exp) : NULL,
		      "last_login", t->last_login ? format_iso8601(t->last_login, login) : NULL,
		      "last_error", t->last_errno < 0 ? t->last_error : NULL,
		      "last_error_at", t->last_errno < 0 ? format_iso8601(t->last_error_at, err_at) : NULL,
		      "errno", t->last_errno < 0 ? strerrorname_np(-t->last_errno) : NULL,
		      "tls_verify", t->info.tls.validate_certs, "warning", t->warning,
		      "counters", "logins", (json_int_t)t->counters.logins, "failures", (json_int_t)t->counters.failures,
		      "refreshes", (json_int_t)t->counters.refreshes, "reads", (json_int_t)t->counters.reads,
		      "reader_waits", (json_int_t)t->counters.reader_waits);
	if (j && t->last_write_at) {
		json_object_set_new(j, "last_write",
				    json_pack("{s:s, s:s, s:s, s:s?}", "file", t->last_write, "result",
					      t->last_write_errno < 0 ? "refused" : t->last_write_errno > 0 ? "unchanged" : "applied",
					      "at", format_iso8601(t->last_write_at, err_at), "errno",
					      t->last_write_errno < 0 ? strerrorname_np(-t->last_write_errno) : NULL));
	}
	if (j && t->skew_known) {
		/* Server's clock minus ours (s), by its Date header: lifetimes are measured on its clock. */
		json_object_set_new(j, "clock_skew", json_integer((json_int_t)t->skew));
	}
	if (j && t->provider->status_extra) {
		t->provider->status_extra(&t->info, t->session, j);
	}
	if (j) {
		fleet_status(t, j);
		audit_status(j);
	}
	text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	b = text ? auth_blob_new_line(text) : NULL;
	if (!b) {
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

static bool has_role(const struct auth_target *t, unsigned f, enum auth_file_role role)
{
	const struct auth_file_info *fi = target_file(t, f);

	return fi && fi->role == role;
}

int file_render_locked(struct auth_target *t, unsigned f, struct auth_blob **ret)
{
	struct auth_blob *b = NULL;
	int r = t->provider->render(&t->info, t->session, target_file(t, f), &b);

	if (r < 0) {
		return r;
	}
	b->gen = t->gen;
	b->valid_until = session_serve_until(t, t->session);
	*ret = b;
	return 0;
}

int auth_file_read(struct auth_target *t, unsigned f, struct auth_blob **ret)
{
	int r;

	if (has_role(t, f, AUTH_FILE_STATUS)) {
		return auth_file_peek(t, f, ret);
	}
	if (!has_role(t, f, AUTH_FILE_SESSION)) {
		return -EACCES; /* credentials and one-time files are write-only */
	}
	r = session_acquire(t);
	if (r < 0) {
		return r;
	}
	r = file_render_locked(t, f, ret);
	pthread_mutex_unlock(&t->lock);
	return r;
}

int auth_file_peek(struct auth_target *t, unsigned f, struct auth_blob **ret)
{
	int r = -ENODATA;

	pthread_mutex_lock(&t->lock);
	if (has_role(t, f, AUTH_FILE_STATUS)) {
		r = render_status(t, ret);
	} else if (has_role(t, f, AUTH_FILE_SESSION)) {
		session_touch(t); /* the kernel asks before it serves a read from its cache */
		if (t->session && !session_usable(t, t->session)) {
			r = -EAGAIN; /* there is one, due for renewal */
		} else if (t->session) {
			r = file_render_locked(t, f, ret);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void auth_file_size_told(struct auth_target *t, unsigned f, uint64_t gen, bool known)
{
	uint32_t bit = 1u << f;

	pthread_mutex_lock(&t->lock);
	if (!known) {
		t->told_files &= ~bit;
	} else if (gen != t->told_gen) {
		t->told_gen = gen; /* a newer session: what was told of the older one is no longer */
		t->told_files = bit;
	} else {
		t->told_files |= bit;
	}
	pthread_mutex_unlock(&t->lock);
}

bool auth_file_size_current(struct auth_target *t, unsigned f, uint64_t gen)
{
	bool current;

	pthread_mutex_lock(&t->lock);
	current = t->told_gen == gen && (t->told_files & (1u << f));
	pthread_mutex_unlock(&t->lock);
	return current;
}

/* JSON: complete (an object parses, nothing but white space after it),
 * cut short (more may follow) or malformed. */
static int json_end(const char *data, size_t len, bool final)
{
	json_error_t err;
	json_auto_t *j = json_loadb(data, len, 0, &err);

	if (j) {
		return json_is_object(j) ? 0 : -EINVAL;
	}
	return json_error_code(&err) == json_error_premature_end_of_input && !final ? -ENODATA : -EINVAL;
}

/* A line still being written: bytes no line value may hold (control
 * characters; a '\r' only before the newline) make it malformed now. */
static int partial_line(const struct auth_file_info *fi, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if ((c < 0x20 && !(c == '\r' && i == len - 1)) || c == 0x7f) {
			return -EINVAL;
		}
	}
	if (fi->check && fi->check(data, len) == -EINVAL) {
		return -EINVAL;
	}
	return -ENODATA;
}

/* Lines of key = value (INI): each complete line must be one (or a comment
 * or a section header); which keys are there is judged at close. */
static int check_ini_lines(const char *data, size_t len)
{
	for (const char *p = data, *end = data + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n;
		if (!nl) {
			break;
		}
		n = (size_t)(nl - p);
		if (n > 0 && *p != '#' && *p != ';' && *p != '[' && !memchr(p, '=', n)) {
			return -EINVAL;
		}
		p = nl + 1;
	}
	return -ENODATA;
}

int file_value_end(const struct auth_file_info *fi, const char *data, size_t len, bool final, size_t *ret_len)
{
	size_t skip = 0;
	const char *nl;
	int r;

	while (skip < len && isspace((unsigned char)data[skip])) {
		skip++;
	}
	if (skip == len) {
		return final ? -EINVAL : -ENODATA;
	}
	if (data[skip] == '{') {
		r = json_end(data, len, final);
		if (r == 0) {
			*ret_len = len;
		}
		return r;
	}
	if (fi->flags & AUTH_FILE_RESUME) {
		return -EINVAL; /* a session is JSON */
	}
	if (fi->flags & AUTH_FILE_LINES) {
		if (!final) {
			return check_ini_lines(data, len);
		}
		*ret_len = len;
		return 0;
	}
	nl = memchr(data, '\n', len);
	if (!nl) {
		if (!final) {
			return partial_line(fi, data, len);
		}
		*ret_len = len;
		return 0;
	}
	if (nl + 1 != data + len) {
		return -EINVAL; /* one line and its newline, nothing after them */
	}
	*ret_len = (size_t)(nl - data) + 1;
	return 0;
}

static int write_credentials(struct auth_target *t, const char *data, size_t len)
{
	_cleanup_secret_ struct secret *password = NULL, *text = NULL;
	_cleanup_free_ char *user = NULL;
	bool same;
	int r;

	r = (t->provider->parse_credentials ?: credentials_parse)(data, len, &user, &password);
	if (r < 0) {
		return r;
	}
	same = session_credentials_same(t, user, password);
	/* Saved normalized, so the store never holds a half-parsed value. The
	 * same credentials written again are saved too (they may have come from
	 * the config), but reported unchanged, for tools that rewrite them. */
	r = auth_json_secret(json_pack("{s:s, s:s}", "username", user, "password", secret_str(password)),
			     JSON_COMPACT, &text);
	if (r < 0) {
		return r;
	}
	r = store_save(t->core->store, t->provider->name, t->name, "credentials", text->data, text->len);
	if (r < 0) {
		return r;
	}
	log_info("%s/%s: saved %s credentials for user %s", t->provider->name, t->name, same ? "the same" : "new", user);
	fleet_credentials_written(t, text->data, text->len);
	session_credentials(t, TAKE_PTR(user), TAKE_PTR(password));
	return same ? 1 : 0;
}

/* A value for the next login (a one-time code), as the file's check()
 * accepts it, without the newline echo adds. */
static int write_one_time(struct auth_target *t, const struct auth_file_info *fi, const char *data, size_t len)
{
	struct secret *value;

	if (len > 0 && data[len - 1] == '\n') {
		len--;
	}
	if (len > 0 && data[len - 1] == '\r') {
		len--;
	}
	if (len == 0 || (fi->check && fi->check(data, len) < 0)) {
		return -EINVAL;
	}
	value = secret_new(data, len);
	if (!value) {
		return -ENOMEM;
	}
	session_one_time(t, value);
	return 0;
}

/* What became of the last value written to one of t's files, for status;
 * a refusal is also the last error (shells ignore close()'s errors), and
 * the log says it once. */
static void record_write(struct auth_target *t, const struct auth_file_info *fi, int r)
{
	char msg[TARGET_ERROR_MAX] = "";

	if (r < 0) {
		snprintf(msg, sizeof(msg), "what was written to %s was refused (%s): %s", fi->name,
			 strerrorname_np(-r) ?: "error",
			 r == -EINVAL ? "malformed or incomplete; the previous value is kept"
				      : "the previous value is kept");
		log_warning("%s/%s: %s", t->provider->name, t->name, msg);
	}
	session_write_recorded(t, fi->name, r, msg);
}

static int write_value(struct auth_target *t, const struct auth_file_info *fi, const char *data, size_t len)
{
	if (fi->role == AUTH_FILE_CREDENTIALS) {
		return write_credentials(t, data, len);
	}
	if (fi->flags & AUTH_FILE_RESUME) {
		return session_resume(t, data, len);
	}
	if (fi->role == AUTH_FILE_ONE_TIME) {
		return write_one_time(t, fi, data, len);
	}
	return -EACCES;
}

static int file_write(struct auth_target *t, unsigned f, const char *data, size_t len, bool final)
{
	const struct auth_file_info *fi = target_file(t, f);
	size_t end = 0;
	int r;

	if (!fi || (fi->role != AUTH_FILE_CREDENTIALS && fi->role != AUTH_FILE_ONE_TIME &&
		    !(fi->flags & AUTH_FILE_RESUME))) {
		return -EACCES;
	}
	r = len > AUTH_WRITE_MAX ? -EFBIG : file_value_end(fi, data, len, final, &end);
	if (r == -ENODATA) {
		return r; /* more may follow */
	}
	if (r == 0) {
		r = write_value(t, fi, data, end);
	}
	record_write(t, fi, r);
	return r < 0 ? r : 0;
}

/* Writes and logouts run in the FUSE loop's threads, which live on (or end
 * and leave their stacks to the next): wipe what parsing credentials or
 * logging out left on the stack. */
int auth_file_write(struct auth_target *t, unsigned f, const char *data, size_t len, bool final)
{
	int r = file_write(t, f, data, len, final);

	secret_wipe_stack();
	return r;
}

int auth_file_unlink(struct auth_target *t, unsigned f)
{
	const struct auth_file_info *fi = target_file(t, f);
	int r;

	if (!fi || !(fi->flags & AUTH_FILE_LOGOUT)) {
		return -EPERM;
	}
	/* rm answers from local state: the kernel holds the directory's lock
	 * until it does (logout.c). */
	r = session_logout_background(t);
	secret_wipe_stack();
	return r;
}
