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
		      "tls_verify", t->info.tls.validate_certs, "warning", t->warning[0] ? t->warning : NULL,
		      "counters", "logins", (json_int_t)t->counters.logins, "failures", (json_int_t)t->counters.failures,
		      "refreshes", (json_int_t)t->counters.refreshes, "reads", (json_int_t)t->counters.reads,
		      "reader_waits", (json_int_t)t->counters.reader_waits);
	if (j && t->provider->status_extra) {
		t->provider->status_extra(&t->info, t->session, j);
	}
	if (j) {
		fleet_status(t, j);
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

static int render_locked(struct auth_target *t, unsigned f, struct auth_blob **ret)
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
	r = render_locked(t, f, ret);
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
			r = render_locked(t, f, ret);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* JSON cut short (more may follow) or malformed. */
static int check_json(const char *data, size_t len)
{
	json_error_t err;
	json_auto_t *j = json_loadb(data, len, 0, &err);

	if (j) {
		return 0;
	}
	return json_error_code(&err) == json_error_premature_end_of_input ? -ENODATA : -EINVAL;
}

/* Text lines: a line still being written, or complete "key = value" lines
 * (INI) that may yet be joined by the missing key, may
 * become valid; anything else can't. */
static int check_lines(const char *data, size_t len)
{
	if (len == 0 || data[len - 1] != '\n') {
		return -ENODATA;
	}
	for (const char *p = data, *end = data + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p);
		if (n > 0 && *p != '#' && *p != ';' && *p != '[' && !memchr(p, '=', n)) {
			return -EINVAL;
		}
		p = nl + 1;
	}
	return -ENODATA;
}

/* -ENODATA: data is no value yet, but more may make it one. */
static int incomplete(const char *data, size_t len)
{
	size_t skip = 0;

	while (skip < len && isspace((unsigned char)data[skip])) {
		skip++;
	}
	if (skip == len) {
		return -ENODATA;
	}
	return data[skip] == '{' ? check_json(data, len) : check_lines(data, len);
}

static int write_credentials(struct auth_target *t, const char *data, size_t len, bool final)
{
	_cleanup_secret_ struct secret *password = NULL, *text = NULL;
	_cleanup_free_ char *user = NULL;
	int r;

	r = (t->provider->parse_credentials ?: credentials_parse)(data, len, &user, &password);
	if (r == -EINVAL && !final && incomplete(data, len) == -ENODATA) {
		return -ENODATA;
	}
	if (r < 0) {
		return r; /* the writer gets EINVAL; fs/ logs it */
	}
	/* Saved normalized, so the store never holds a half-parsed value. */
	r = auth_json_secret(json_pack("{s:s, s:s}", "username", user, "password", secret_str(password)),
			     JSON_COMPACT, &text);
	if (r < 0) {
		return r;
	}
	r = store_save(t->core->store, t->provider->name, t->name, "credentials", text->data, text->len);
	if (r < 0) {
		return r;
	}
	log_info("%s/%s: saved new credentials for user %s", t->provider->name, t->name, user);
	fleet_credentials_written(t, text->data, text->len);
	session_credentials(t, TAKE_PTR(user), TAKE_PTR(password));
	return 0;
}

/* A value for the next login (a one-time code), as the file's check()
 * accepts it, without the newline echo adds. */
static int write_one_time(struct auth_target *t, const struct auth_file_info *fi, const char *data, size_t len,
			  bool final)
{
	struct secret *value;
	int r = fi->check ? fi->check(data, len) : 0;

	if (r < 0) {
		return r == -ENODATA && !final ? -ENODATA : -EINVAL;
	}
	if (len > 0 && data[len - 1] == '\n') {
		len--;
	}
	value = secret_new(data, len);
	if (!value) {
		return -ENOMEM;
	}
	session_one_time(t, value);
	return 0;
}

int auth_file_write(struct auth_target *t, unsigned f, const char *data, size_t len, bool final)
{
	const struct auth_file_info *fi = target_file(t, f);
	int r;

	if (len > AUTH_WRITE_MAX) {
		return -EFBIG;
	}
	if (!fi) {
		return -EACCES;
	}
	if (fi->role == AUTH_FILE_CREDENTIALS) {
		return write_credentials(t, data, len, final);
	}
	if (fi->flags & AUTH_FILE_RESUME) {
		r = incomplete(data, len);
		if (r == -ENODATA) {
			return final ? -EINVAL : -ENODATA;
		}
		return r < 0 ? r : session_resume(t, data, len);
	}
	if (fi->role == AUTH_FILE_ONE_TIME) {
		return write_one_time(t, fi, data, len, final);
	}
	return -EACCES;
}

int auth_file_unlink(struct auth_target *t, unsigned f)
{
	const struct auth_file_info *fi = target_file(t, f);

	if (!fi || !(fi->flags & AUTH_FILE_LOGOUT)) {
		return -EPERM;
	}
	return session_logout(t, now_mono() + t->info.timeout);
}
