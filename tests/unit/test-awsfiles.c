/* The AWS shared files (awsfiles.c): the INI reader, profiles with role
 * settings and session tokens, [services] endpoints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "providers/sts/awsfiles.h"
#include "tap.h"

struct seen {
	char text[8192];
	size_t len;
};

static int record(void *userdata, const char *section, const char *key, const char *value)
{
	struct seen *s = userdata;

	s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "[%s]%s=%s|", section, key, value);
	return 1;
}

static void test_ini_reader(void)
{
	struct seen s = { 0 };
	char long_value[1001], text[2048];
	int r;

	r = aws_ini_parse_string("# comment\n; comment\n[default]\nregion = eu-west-1\r\n\n[profile a b]\n"
				 "key: value with = sign\nempty =\n",
				 record, &s);
	is_int(r, 0, "comments, CRLF, ':' and empty values parse");
	is_str(s.text, "[default]region=eu-west-1|[profile a b]key=value with = sign|[profile a b]empty=|",
	       "what the handler saw");

	memset(long_value, 'T', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = 0;
	snprintf(text, sizeof(text), "[p]\naws_session_token = %s\nnext = 1\n", long_value);
	s = (struct seen){ 0 };
	r = aws_ini_parse_string(text, record, &s);
	is_int(r, 0, "a 1000-character session token is one line");
	ok(strstr(s.text, long_value) && strstr(s.text, "[p]next=1|"), "the whole token and the line after it");

	s = (struct seen){ 0 };
	r = aws_ini_parse_string("[services x]\nsts =\n  endpoint_url = http://127.0.0.1:1\n\tregion = r\n", record, &s);
	is_int(r, 0, "nested settings");
	is_str(s.text, "[services x]sts=|[services x]sts=endpoint_url = http://127.0.0.1:1|[services x]sts=region = r|",
	       "indented lines continue the last key");

	s = (struct seen){ 0 };
	r = aws_ini_parse_string("[p]\njust text\n[broken\nk = v\n", record, &s);
	is_int(r, -EINVAL, "malformed lines are an error");
	is_str(s.text, "[p]k=v|", "the good lines still come through");
}

static char dir[] = "/tmp/sessionfs-test-awsfiles.XXXXXX";

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		abort();
	}
}

static void test_profiles(void)
{
	struct aws_profile p = { 0 };
	char path[256], *url = NULL;

	snprintf(path, sizeof(path), "%s/config", dir);
	setenv("AWS_CONFIG_FILE", path, 1);
	snprintf(path, sizeof(path), "%s/credentials", dir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	write_file("config", "[profile role]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n"
			     "external_id = x-1\nmfa_serial = arn:aws:iam::1:mfa/m\nservices = local\n"
			     "endpoint_url = http://127.0.0.1:2\n\n"
			     "[profile proc]\ncredential_process = /bin/false\n\n"
			     "[profile sso]\nsso_session = corp\n\n"
			     "[services local]\ns3 =\n  endpoint_url = http://127.0.0.1:3\nsts =\n"
			     "  endpoint_url = http://127.0.0.1:4\n");
	write_file("credentials", "[base]\naws_access_key_id = AKIAEXAMPLEEXAMPLE00\n"
				  "aws_secret_access_key = secret/secret+secret\naws_session_token = tok==\n");

	is_int(aws_profile_load("role", &p), 0, "role profile loads");
	is_str(p.role_arn, "arn:aws:iam::1:role/r", "role_arn");
	is_str(p.source_profile, "base", "source_profile");
	is_str(aws_profile_string(&p, "external_id"), "x-1", "external_id by name");
	is_str(p.endpoint_url, "http://127.0.0.1:2", "endpoint_url");
	ok(!p.access_key_id && !p.credential_process && !p.sso, "no keys, no process, no sso");
	aws_profile_done(&p);

	is_int(aws_profile_load("base", &p), 0, "keys profile loads");
	is_str(secret_str(p.session_token), "tok==", "aws_session_token");
	is_str(secret_str(p.secret_access_key), "secret/secret+secret", "secret");
	aws_profile_done(&p);

	is_int(aws_profile_load("proc", &p), 0, "credential_process profile loads");
	ok(p.credential_process, "credential_process noticed");
	aws_profile_done(&p);
	is_int(aws_profile_load("sso", &p), 0, "sso profile loads");
	ok(p.sso, "sso_* noticed");
	aws_profile_done(&p);
	is_int(aws_profile_load("nope", &p), -ENOENT, "unknown profile");

	is_int(aws_services_endpoint("local", "sts", &url), 0, "services endpoint");
	is_str(url, "http://127.0.0.1:4", "the sts one, not s3's");
	free(url);
	is_int(aws_services_endpoint("other", "sts", &url), -ENOENT, "unknown services section");
}

/* Section headers as botocore's configloader reads them: shlex words. */
static void test_profile_names(void)
{
	static const char *const want[] = { "default", "profile", "quoted prof", "single q", "space prof", "x y" };
	struct aws_profile p = { 0 };
	char **names = NULL;
	size_t n = 0;

	write_file("config", "[default]\nregion = a\n[profile \"quoted prof\"]\nregion = b\n"
			     "[profile 'single q']\nregion = c\n[profile my prof]\nregion = d\n"
			     "[profile \"open]\nregion = e\n[profile x\\ y]\nregion = f\n"
			     "[profile]\nregion = g\n[profile profile]\nregion = h\n[sso-session s]\n");
	write_file("credentials", "[space prof]\naws_access_key_id = AKIAEXAMPLEEXAMPLE01\n"
				  "aws_secret_access_key = secret\n");

	is_int(aws_profiles_list(&names, &n), 0, "profiles listed");
	is_int((int)n, (int)ELEMENTSOF(want), "[profile my prof], [profile \"open] and [profile] are none");
	for (size_t i = 0; i < n && i < ELEMENTSOF(want); i++) {
		is_str(names[i], want[i], "profile %zu", i);
	}
	auth_strv_free(names, n);
	is_int(aws_profile_load("quoted prof", &p), 0, "[profile \"quoted prof\"] loads as quoted prof");
	is_str(p.region, "b", "its region");
	aws_profile_done(&p);
	is_int(aws_profile_load("x y", &p), 0, "[profile x\\ y] loads as x y");
	is_str(p.region, "f", "its region");
	aws_profile_done(&p);
	is_int(aws_profile_load("my prof", &p), -ENOENT, "[profile my prof] is not a profile (three words)");
	is_int(aws_profile_load("space prof", &p), 0, "[space prof] of the credentials file loads");
	is_str(p.access_key_id, "AKIAEXAMPLEEXAMPLE01", "its key");
	aws_profile_done(&p);
}

int main(void)
{
	char path[256];

	plan(-1);
	test_ini_reader();
	if (!mkdtemp(dir)) {
		abort();
	}
	test_profiles();
	test_profile_names();
	for (const char *const *f = (const char *const[]){ "config", "credentials", NULL }; *f; f++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *f);
		unlink(path);
	}
	rmdir(dir);
	return done();
}
