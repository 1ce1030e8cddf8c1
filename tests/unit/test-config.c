/* config_parse_string() and the helpers behind it: parse_bool, parse_int,
 * access_rule_parse, target_config_get, config_find_defaults and
 * config_resolve_secret (with real files in a temporary directory). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"
#include "tap.h"

#define SENTINEL ((struct config *)0x1)

static const struct target_config *find_target(const struct config *c, const char *provider, const char *name)
{
	for (size_t i = 0; c && i < c->n_targets; i++) {
		if (streq_ptr(c->targets[i].provider, provider) && streq_ptr(c->targets[i].name, name)) {
			return &c->targets[i];
		}
	}
	return NULL;
}

static void test_defaults(void)
{
	struct config *c = NULL;

	is_int(config_parse_string("", NULL, &c), 0, "empty config parses");
	if (!c) {
		return;
	}
	is_str(c->state_dir, "/var/lib/sessionfs", "default state_dir");
	is_int(c->timeout, 30, "default timeout");
	is_int(c->refresh_margin, 300, "default refresh_margin");
	is_int(c->n_targets, 0, "no targets");
	is_int(c->n_defaults, 0, "no defaults sections");
	is_int(c->n_access, 0, "no access rules");
	ok(config_find_defaults(c, "aos") == NULL, "no [aos] defaults");
	config_free(c);

	c = NULL;
	is_int(config_parse_string("[aos \"lab\"]\nserver = lab.example.net\n", NULL, &c), 0, "config without [sessionfs]");
	if (c) {
		is_str(c->state_dir, CONFIG_DEFAULT_STATE_DIR, "state_dir defaults when [sessionfs] is absent");
		is_int(c->timeout, CONFIG_DEFAULT_TIMEOUT, "timeout defaults when [sessionfs] is absent");
		is_int(c->refresh_margin, CONFIG_DEFAULT_REFRESH_MARGIN, "refresh_margin defaults when absent");
	}
	config_free(c);

	c = NULL;
	is_int(config_load(NULL, NULL, &c), 0, "config_load(NULL) gives built-in defaults");
	if (c) {
		is_int(c->timeout, 30, "config_load(NULL): timeout");
	}
	config_free(c);
	config_free(NULL); /* accepts NULL */
}

static void test_globals(void)
{
	struct config *c = NULL;

	is_int(config_parse_string("[sessionfs]\n"
				   "state_dir = /srv/state\n"
				   "timeout = 7\n"
				   "refresh_margin = 0\n",
				   NULL, &c),
	       0, "[sessionfs] keys parse");
	if (!c) {
		return;
	}
	is_str(c->state_dir, "/srv/state", "state_dir set");
	is_int(c->timeout, 7, "timeout set");
	is_int(c->refresh_margin, 0, "refresh_margin 0 allowed");
	is_int(c->n_targets + c->n_defaults, 0, "[sessionfs] is not a target section");
	config_free(c);

	c = NULL;
	is_int(config_parse_string("[sessionfs]\ntimeout = 5\ntimeout = 3600\nrefresh_margin = 86400\n", NULL, &c), 0,
	       "bounds of timeout and refresh_margin");
	if (c) {
		is_int(c->timeout, 3600, "later timeout wins, 3600 allowed");
		is_int(c->refresh_margin, 86400, "refresh_margin 86400 allowed");
	}
	config_free(c);
}

static void test_design_example(void)
{
	static const char text[] =
		"[sessionfs]\n"
		"state_dir = /var/lib/sessionfs      ; credentials and resumable sessions, 0700\n"
		"timeout = 30                        ; seconds a read may wait for the network\n"
		"refresh_margin = 300                ; refresh this long before expiry\n"
		"\n"
		"[aos \"aos1\"]\n"
		"server = aos1.example.net\n"
		"port = 443\n"
		"user = admin\n"
		"password_file = /run/secrets/aos1\n"
		"ca_path = /etc/ssl/aos-ca.pem      ; validate_certs = false only when asked for\n"
		"\n"
		"[idrac \"r640-07\"]\n"
		"host = 10.1.2.7\n"
		"user = root\n"
		"password_env = R640_PASS\n"
		"logout_on_exit = true\n"
		"\n"
		"[sts \"ci\"]\n"
		"profile = ci                        ; long-term keys from ~/.aws/credentials\n"
		"duration_seconds = 43200\n"
		"mfa_serial_number = arn:aws:iam::123456789012:mfa/ci\n"
		"region = eu-west-1\n"
		"\n"
		"[access]                            ; who may read what (with -o allow_other)\n"
		"aos/aos1/token = uid:1001 mode:0400\n";
	const struct target_config *t;
	struct config *c = NULL;

	is_int(config_parse_string(text, NULL, &c), 0, "the DESIGN.md example parses");
	if (!c) {
		return;
	}
	is_str(c->state_dir, "/var/lib/sessionfs", "example: state_dir without its comment");
	is_int(c->n_targets, 3, "example: three targets");
	is_int(c->n_defaults, 0, "example: no defaults sections");
	t = find_target(c, "aos", "aos1");
	ok(t != NULL, "example: aos/aos1 present");
	is_str(target_config_get(t, "server"), "aos1.example.net", "example: aos1 server");
	is_str(target_config_get(t, "port"), "443", "example: aos1 port");
	is_str(target_config_get(t, "ca_path"), "/etc/ssl/aos-ca.pem", "example: ca_path without its comment");
	is_int(t ? t->n_kv : 0, 5, "example: aos1 has 5 keys");
	t = find_target(c, "idrac", "r640-07");
	is_str(target_config_get(t, "password_env"), "R640_PASS", "example: idrac password_env");
	is_str(target_config_get(t, "logout_on_exit"), "true", "example: idrac logout_on_exit");
	t = find_target(c, "sts", "ci");
	is_str(target_config_get(t, "mfa_serial_number"), "arn:aws:iam::123456789012:mfa/ci",
	       "example: sts value with colons");
	is_int(c->n_access, 1, "example: one access rule");
	if (c->n_access == 1) {
		is_str(c->access[0].path, "aos/aos1/token", "example: access path");
		ok(c->access[0].has_uid && c->access[0].uid == 1001, "example: access uid 1001");
		ok(!c->access[0].has_gid, "example: access without gid");
		ok(c->access[0].has_mode && c->access[0].mode == 0400, "example: access mode 0400");
	}
	config_free(c);
}

static void test_sections(void)
{
	const struct target_config *t, *d;
	struct config *c = NULL;

	is_int(config_parse_string("[aos]\n"
				   "port = 8443\n"
				   "user = fallback\n"
				   "[aos \"lab\"]\n"
				   "server = lab1.example.net\n"
				   "user = first\n"
				   "user = second\n"
				   "[aos \"prod\"]\n"
				   "server = prod.example.net\n"
				   "[aos \"lab\"]\n"
				   "user = third\n"
				   "[idrac \"lab\"]\n"
				   "host = 10.0.0.9\n",
				   NULL, &c),
	       0, "named and defaults sections parse");
	if (!c) {
		return;
	}
	is_int(c->n_targets, 3, "three named targets (a repeated section merges)");
	is_int(c->n_defaults, 1, "one defaults section");

	t = find_target(c, "aos", "lab");
	ok(t != NULL, "aos/lab found");
	is_str(target_config_get(t, "server"), "lab1.example.net", "aos/lab server");
	is_str(target_config_get(t, "user"), "third", "last assignment wins, across a repeated section");
	is_int(t ? t->n_kv : 0, 4, "every assignment is kept");
	ok(target_config_get(t, "port") == NULL, "a named section does not see defaults by itself");
	ok(target_config_get(t, "missing") == NULL, "missing key → NULL");
	ok(target_config_get(NULL, "server") == NULL, "target_config_get(NULL) → NULL");

	t = find_target(c, "aos", "prod");
	is_str(target_config_get(t, "server"), "prod.example.net", "aos/prod server");
	is_str(target_config_get(t, "user"), NULL, "aos/prod has no user");

	t = find_target(c, "idrac", "lab");
	is_str(target_config_get(t, "host"), "10.0.0.9", "same name under another provider is another target");

	d = config_find_defaults(c, "aos");
	ok(d != NULL, "[aos] defaults found");
	ok(d && d->name == NULL, "defaults section has no name");
	is_str(d ? d->provider : NULL, "aos", "defaults section provider");
	is_str(target_config_get(d, "port"), "8443", "defaults: port");
	is_str(target_config_get(d, "user"), "fallback", "defaults: user");
	ok(config_find_defaults(c, "idrac") == NULL, "no [idrac] defaults");
	ok(config_find_defaults(NULL, "aos") == NULL, "config_find_defaults(NULL) → NULL");
	config_free(c);

	c = NULL;
	is_int(config_parse_string("[aos \"a b.example.net:8443\"]\nuser = x\n", NULL, &c), 0,
	       "quoted name with space, dots and colon");
	t = find_target(c, "aos", "a b.example.net:8443");
	is_str(target_config_get(t, "user"), "x", "name kept verbatim");
	config_free(c);
}

static void check_invalid(const char *text, const char *what)
{
	struct config *c = SENTINEL;

	is_int(config_parse_string(text, NULL, &c), -EINVAL, "invalid: %s", what);
	ok(c == SENTINEL, "invalid: %s: output untouched", what);
	if (c != SENTINEL) {
		config_free(c);
	}
}

/* Sections are found by a hash while the file is read: many of them (the
 * table is made again, bigger, several times), each reopened later, names
 * that differ by a character or share one under another provider. */
static void test_many_sections(void)
{
	enum { N = 5000 };
	struct config *c = NULL;
	char *text = NULL, line[128];
	size_t len = 0, mism = 0;
	FILE *f = open_memstream(&text, &len);

	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < N; i++) {
			fprintf(f, "[aos \"t%d\"]\n%s = %d\n", i, pass ? "port" : "server", pass ? 1000 + i % 60000 : i);
			if (pass == 0 && i % 100 == 0) {
				fprintf(f, "[idrac \"t%d\"]\nhost = other%d\n[aos]\nuser = u%d\n", i, i, i);
			}
		}
	}
	fclose(f);
	is_int(config_parse_string(text, NULL, &c), 0, "10,000 sections of 5,000 targets parse");
	free(text);
	if (!c) {
		return;
	}
	is_int(c->n_targets, N + N / 100, "each reopened section merges into its first");
	is_int(c->n_defaults, 1, "the defaults section, reopened, is one");
	ok(c->sections == NULL, "the table lives only while parsing");
	for (int i = 0; i < N; i++) {
		const struct target_config *t;
		snprintf(line, sizeof(line), "t%d", i);
		t = find_target(c, "aos", line);
		snprintf(line, sizeof(line), "%d", i);
		mism += !t || !streq_ptr(target_config_get(t, "server"), line) || t->n_kv != 2;
	}
	is_int(mism, 0, "every target has its own two lines");
	is_str(target_config_get(find_target(c, "idrac", "t100"), "host"), "other100", "same name, other provider");
	ok(find_target(c, "aos", "t1") != find_target(c, "aos", "t10"), "t1 and t10 are two");
	is_str(target_config_get(config_find_defaults(c, "aos"), "user"), "u4900", "defaults: the last user");
	config_free(c);
}

static void test_invalid(void)
{
	check_invalid("[sessionfs]\ntimeout = abc\n", "timeout=abc");
	check_invalid("[sessionfs]\ntimeout = 0\n", "timeout=0");
	check_invalid("[sessionfs]\ntimeout = 3601\n", "timeout=3601");
	check_invalid("[sessionfs]\ntimeout = -1\n", "timeout=-1");
	check_invalid("[sessionfs]\ntimeout = 30s\n", "timeout=30s");
	check_invalid("[sessionfs]\ntimeout =\n", "timeout empty");
	check_invalid("[sessionfs]\nrefresh_margin = 86401\n", "refresh_margin=86401");
	check_invalid("[sessionfs]\nrefresh_margin = -1\n", "refresh_margin=-1");
	check_invalid("[sessionfs]\nbogus = 1\n", "unknown global key");
	check_invalid("[sessionfs]\nTimeout = 30\n", "global keys are case-sensitive");
	check_invalid("[aos \"lab]\nserver = x\n", "section name with unterminated quote");
	check_invalid("[aos lab\"]\nserver = x\n", "section name with a single trailing quote");
	check_invalid("[aos \"\"]\nserver = x\n", "section with empty quoted name");
	check_invalid("[aos \"la\"b\"]\nserver = x\n", "section with text after the closing quote");
	check_invalid("[aos \"lab\" x]\nserver = x\n", "section with a word after the name");
	check_invalid("[aos \"lab\"]\nserver = x\nthis line has no equals sign\n", "line without '='");
	check_invalid("[access]\naos/lab/token = uid:abc\n", "[access] uid not a number");
	check_invalid("[access]\naos/lab/token = uid:-1\n", "[access] negative uid");
	check_invalid("[access]\naos/lab/token = gid:\n", "[access] empty gid");
	check_invalid("[access]\naos/lab/token = mode:0999\n", "[access] mode not octal");
	check_invalid("[access]\naos/lab/token = mode:10000\n", "[access] mode too large");
	check_invalid("[access]\naos/lab/token = owner:root\n", "[access] unknown word");
	check_invalid("[access]\naos/lab/token = uid:1 gid:2 mode:0440 extra\n", "[access] trailing junk");
	/* A key before any section header belongs to no section: libinih hands
	 * it over with section "", which must not pass silently. */
	check_invalid("timeout = 5\n[sessionfs]\nrefresh_margin = 60\n", "key before any section");
	/* A good line before the bad one does not save the config. */
	check_invalid("[access]\naos/a/token = uid:1\naos/b/token = uid:x\n", "[access] second line bad");
}

static void test_access(void)
{
	struct access_rule a = { 0 };
	struct config *c = NULL;

	is_int(config_parse_string("[access]\n"
				   "aos/lab/token = uid:1001 gid:1002 mode:0440\n"
				   "aos/lab/status = mode:644\n"
				   "aos/prod/token = gid:0\n",
				   NULL, &c),
	       0, "[access] lines parse");
	if (!c) {
		return;
	}
	is_int(c->n_access, 3, "three access rules");
	if (c->n_access == 3) {
		is_str(c->access[0].path, "aos/lab/token", "rule 0 path");
		ok(c->access[0].has_uid && c->access[0].has_gid && c->access[0].has_mode, "rule 0 has uid, gid, mode");
		is_int(c->access[0].uid, 1001, "rule 0 uid");
		is_int(c->access[0].gid, 1002, "rule 0 gid");
		is_int(c->access[0].mode, 0440, "rule 0 mode (octal)");
		is_str(c->access[1].path, "aos/lab/status", "rule 1 path");
		ok(!c->access[1].has_uid && !c->access[1].has_gid && c->access[1].has_mode, "rule 1 has only a mode");
		is_int(c->access[1].mode, 0644, "rule 1 mode without leading 0 is still octal");
		ok(!c->access[2].has_uid && c->access[2].has_gid && !c->access[2].has_mode, "rule 2 has only a gid");
		is_int(c->access[2].gid, 0, "rule 2 gid 0");
	}
	config_free(c);

	/* Targets may be named host:port; their access lines must still work, but
	 * libinih also splits "name: value" at the first ':'. */
	c = NULL;
	is_int(config_parse_string("[access]\naos/10.0.0.1:8443/token = uid:1001\n", NULL, &c), 0,
	       "[access] line for a host:port target parses");
	is_str(c && c->n_access == 1 ? c->access[0].path : NULL, "aos/10.0.0.1:8443/token",
	       "[access] path keeps the port");
	config_free(c);

	is_int(access_rule_parse("x/y", "mode:07777\tuid:2147483647", &a), 0, "access_rule_parse: tab, limits");
	is_int(a.mode, 07777, "mode 07777");
	is_int(a.uid, 2147483647, "uid 2147483647");
	free(a.path);
	a = (struct access_rule){ .path = (char *)"untouched" };
	is_int(access_rule_parse("x/y", "uid:2147483648", &a), -EINVAL, "uid beyond 2^31-1 rejected");
	is_str(a.path, "untouched", "rejected rule leaves output untouched");
}

static void test_parse_bool(void)
{
	static const char *const yes[] = { "1", "true", "yes", "on", "TRUE", "Yes", "oN" };
	static const char *const no[] = { "0", "false", "no", "off", "FALSE", "No", "OFF" };
	static const char *const bad[] = { "", "2", "y", "n", "t", "truee", " yes", "yes ", "enable", "-1", "01" };
	bool b;

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		b = false;
		is_int(parse_bool(yes[i], &b), 0, "parse_bool('%s') succeeds", yes[i]);
		ok(b, "parse_bool('%s') is true", yes[i]);
	}
	for (size_t i = 0; i < ELEMENTSOF(no); i++) {
		b = true;
		is_int(parse_bool(no[i], &b), 0, "parse_bool('%s') succeeds", no[i]);
		ok(!b, "parse_bool('%s') is false", no[i]);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		b = true;
		is_int(parse_bool(bad[i], &b), -EINVAL, "parse_bool('%s') → -EINVAL", bad[i]);
		ok(b, "parse_bool('%s') leaves output untouched", bad[i]);
	}
}

static void check_int(const char *s, long min, long max, int want_r, long want)
{
	long v = -12345;

	is_int(parse_int(s, min, max, &v), want_r, "parse_int('%s', %ld, %ld) returns %d", s, min, max, want_r);
	is_int(v, want_r == 0 ? want : -12345, "parse_int('%s', %ld, %ld) value", s, min, max);
}

static void test_parse_int(void)
{
	char buf[64];

	check_int("0", 0, 10, 0, 0);
	check_int("10", 0, 10, 0, 10);
	check_int("11", 0, 10, -EINVAL, 0);
	check_int("-1", 0, 10, -EINVAL, 0);
	check_int("-10", -10, 10, 0, -10);
	check_int("-11", -10, 10, -EINVAL, 0);
	check_int("007", 0, 10, 0, 7); /* decimal, not octal */
	check_int("08", 0, 10, 0, 8);
	check_int("", 0, 10, -EINVAL, 0);
	check_int("abc", 0, 10, -EINVAL, 0);
	check_int("5abc", 0, 10, -EINVAL, 0);
	check_int("5 ", 0, 10, -EINVAL, 0);
	check_int("0x5", 0, 10, -EINVAL, 0);
	check_int("1.5", 0, 10, -EINVAL, 0);
	check_int("-", 0, 10, -EINVAL, 0);
	check_int("99999999999999999999", 0, LONG_MAX, -EINVAL, 0);
	check_int("-99999999999999999999", LONG_MIN, 0, -EINVAL, 0);
	snprintf(buf, sizeof(buf), "%ld", LONG_MAX);
	check_int(buf, 0, LONG_MAX, 0, LONG_MAX);
	snprintf(buf, sizeof(buf), "%ld", LONG_MIN);
	check_int(buf, LONG_MIN, 0, 0, LONG_MIN);
}

static char tmpdir[] = "/tmp/sessionfs-test-config.XXXXXX";

static char *write_file(const char *name, const char *content, mode_t mode)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/%s", tmpdir, name) < 0) {
		abort();
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content) || fchmod(fd, mode) < 0) {
		perror(path);
		abort();
	}
	close(fd);
	return path;
}

/* A one-section config from a printf format; the caller frees it. */
_printf_(1, 2) static struct config *section(const char *fmt, ...)
{
	_cleanup_free_ char *body = NULL, *text = NULL;
	struct config *c = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0 || asprintf(&text, "[aos \"t\"]\n%s", body) < 0 || config_parse_string(text, NULL, &c) < 0) {
		abort();
	}
	return c;
}

static void check_secret(struct config *c, int want_r, const char *want, const char *what)
{
	struct secret *s = (struct secret *)0x1;
	int r = config_resolve_secret(find_target(c, "aos", "t"), "password", &s);

	is_int(r, want_r, "resolve %s: returns %d", what, want_r);
	if (want_r == 0) {
		is_str(r == 0 ? secret_str(s) : NULL, want, "resolve %s: value", what);
		is_int(r == 0 ? s->len : 0, strlen(want), "resolve %s: length", what);
		if (r == 0) {
			secret_free(s);
		}
	} else {
		ok(s == (struct secret *)0x1, "resolve %s: output untouched", what);
		if (r == 0) {
			secret_free(s);
		}
	}
	config_free(c);
}

static void test_resolve_secret(void)
{
	_cleanup_free_ char *good = NULL, *open_file = NULL, *link = NULL, *missing = NULL, *crlf = NULL;
	struct secret *s = NULL;
	struct config *c;

	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		abort();
	}
	good = write_file("good", "file-s3cret\n", 0600);
	open_file = write_file("readable", "leaked\n", 0644);
	crlf = write_file("crlf", "pa ss:word\r\n", 0400);
	if (asprintf(&link, "%s/link", tmpdir) < 0 || symlink(good, link) < 0 ||
	    asprintf(&missing, "%s/missing", tmpdir) < 0) {
		abort();
	}

	check_secret(section("password = inline-pass\n"), 0, "inline-pass", "password");
	check_secret(section("password_file = %s\n", good), 0, "file-s3cret", "password_file 0600");
	check_secret(section("password_file = %s\n", crlf), 0, "pa ss:word", "password_file 0400 with CRLF");
	check_secret(section("password_file = %s\n", open_file), -EPERM, NULL, "password_file 0644");
	/* Kubernetes Secret volumes are symlinks: followed, the file at the end checked. */
	check_secret(section("password_file = %s\n", link), 0, "file-s3cret", "password_file a symlink to a 0600 file");
	check_secret(section("password_file = %s\n", tmpdir), -EPERM, NULL, "password_file a directory");
	check_secret(section("password_file = %s\n", missing), -EINVAL, NULL, "password_file missing");
	check_secret(section("password = inline\npassword_file = %s\n", good), 0, "inline",
		     "password takes precedence over password_file");

	setenv("SESSIONFS_TEST_PASS", "env-pass", 1);
	unsetenv("SESSIONFS_TEST_UNSET");
	check_secret(section("password_env = SESSIONFS_TEST_PASS\n"), 0, "env-pass", "password_env set");
	check_secret(section("password_env = SESSIONFS_TEST_UNSET\n"), -EINVAL, NULL, "password_env unset");
	check_secret(section("user = admin\n"), -ENOENT, NULL, "nothing set");
	is_int(config_resolve_secret(NULL, "password", &s), -ENOENT, "resolve in no section → -ENOENT");

	/* Another prefix reads other keys. */
	c = section("password = p\nsecret_key_env = SESSIONFS_TEST_PASS\n");
	s = NULL;
	is_int(config_resolve_secret(find_target(c, "aos", "t"), "secret_key", &s), 0, "prefix secret_key");
	is_str(secret_str(s), "env-pass", "prefix secret_key reads secret_key_env");
	secret_free(s);
	config_free(c);

	unlink(good);
	unlink(open_file);
	unlink(crlf);
	unlink(link);
	rmdir(tmpdir);
}

/* Numeric keys are parsed once, when the config is read; the engine reads
 * the numbers, not the text. */
static void test_numbers(void)
{
	struct config *c = NULL;
	const struct target_config *t;
	long n = -1;

	is_int(config_parse_string("[aos]\nport = 8443\ntimeout = 7\n"
				   "[aos \"lab\"]\nport = 9000\nport = 9001\nserver = lab\n",
				   NULL, &c),
	       0, "numeric keys parse");
	if (!c) {
		return;
	}
	t = find_target(c, "aos", "lab");
	is_int(target_config_get_number(t, "port", &n), 0, "port is a number");
	is_int(n, 9001, "the last assignment wins");
	is_int(target_config_get_number(t, "timeout", &n), -ENOENT, "unset → ENOENT");
	is_int(target_config_get_number(t, "server", &n), -EINVAL, "a key without a range → EINVAL");
	is_int(target_config_get_number(NULL, "port", &n), -ENOENT, "no section → ENOENT");
	n = -1;
	is_int(target_config_get_number(config_find_defaults(c, "aos"), "timeout", &n), 0, "defaults: timeout");
	is_int(n, 7, "defaults: timeout 7");
	config_free(c);

	is_int(config_parse_number("port", "8443", &n), 0, "a port from elsewhere (a name, the environment)");
	is_int(n, 8443, "... is parsed");
	is_int(config_parse_number("port", "65536", &n), -EINVAL, "... with the config's range");
	is_int(config_parse_number("server", "1", &n), -ENOENT, "a key without a range → ENOENT");
}

int main(void)
{
	secret_init(1 << 20);
	test_defaults();
	test_globals();
	test_design_example();
	test_sections();
	test_many_sections();
	test_numbers();
	test_invalid();
	test_access();
	test_parse_bool();
	test_parse_int();
	test_resolve_secret();
	is_int(CRYPTO_secure_used(), 0, "every secret was freed");
	return done();
}
