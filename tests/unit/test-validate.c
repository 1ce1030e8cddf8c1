/* validate.c, and the providers' reply parsers and session loaders on the
 * hostile payloads of issue 11: every value a server sends or a user writes is
 * checked against its grammar before it is stored or served. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "providers/replies.h"
#include "tap.h"
#include "lib/validate.h"

static struct target_info info = {
	.provider = "idrac", .name = "bmc", .scheme = "https", .host = "bmc.example", .port = 443,
	.base_url = "https://bmc.example:443", .timeout = 5,
};

static void test_token(void)
{
	ok(validate_token("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln"), "a JWT is a token");
	ok(validate_token("IQoJb3JpZ2luX2VjE+/=="), "base64 is a token");
	ok(!validate_token(""), "empty is not");
	ok(!validate_token(NULL), "NULL is not");
	ok(!validate_token("abc\r\nX-Injected: yes"), "CR/LF is not");
	ok(!validate_token("abc\n"), "a trailing LF is not");
	ok(!validate_token("a b"), "a space is not");
	ok(!validate_token("a\tb"), "a tab is not");
	ok(!validate_token("a\"b"), "a double quote is not");
	ok(!validate_token("a'b"), "a single quote is not");
	ok(!validate_token("a`b"), "a backquote is not");
	ok(!validate_token("a\\b"), "a backslash is not");
	ok(!validate_token("a\x7f"), "DEL is not");
	ok(!validate_token("caf\xc3\xa9"), "non-ASCII is not");
	char *big = malloc(VALIDATE_TOKEN_MAX + 2);
	memset(big, 'a', VALIDATE_TOKEN_MAX + 1);
	big[VALIDATE_TOKEN_MAX + 1] = 0;
	ok(!validate_token(big), "longer than %d bytes is not", VALIDATE_TOKEN_MAX);
	big[VALIDATE_TOKEN_MAX] = 0;
	ok(validate_token(big), "%d bytes is", VALIDATE_TOKEN_MAX);
	free(big);
}

static void test_aws(void)
{
	ok(validate_aws_key_id("ASIAIOSFODNN7EXAMPLE"), "ASIA key id");
	ok(!validate_aws_key_id("ASIA'$(touch /tmp/x)'"), "shell in a key id");
	ok(validate_aws_key_id("ASIA123456789012"), "16 characters");
	ok(!validate_aws_key_id("ASIA1234567"), "too short");
	ok(!validate_aws_key_id("asiaiosfodnn7example"), "lower case");
	ok(validate_base64("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "secret key");
	ok(validate_base64("IQoJb3JpZ2luX2VjEE8aCXVzLWVhc3QtMSJHMEUCIQ=="), "session token with padding");
	ok(!validate_base64(""), "empty base64");
	ok(!validate_base64("abc==="), "three = is too much padding");
	ok(!validate_base64("ab=c"), "= in the middle");
	ok(!validate_base64("abc'$(id)'"), "shell in base64");
	ok(!validate_base64("abc\n"), "LF in base64");
	ok(validate_rfc3339("2026-11-23T16:00:00Z"), "RFC 3339 Z");
	ok(validate_rfc3339("2026-11-23T16:00:00.123Z"), "with fraction");
	ok(validate_rfc3339("2026-11-23T16:00:00+01:00"), "with offset");
	ok(!validate_rfc3339("2026-11-23 16:00:00Z"), "space for T");
	ok(!validate_rfc3339("2026-13-23T16:00:00Z"), "month 13");
	ok(!validate_rfc3339("2026-11-23T16:00:00Z'$(id)'"), "shell after it");
	ok(!validate_rfc3339("2026-11-23T16:00:00"), "no zone");
	ok(!validate_rfc3339("2026-11-23T16:00:00."), "empty fraction");
	ok(!validate_rfc3339(""), "empty date");
}

static void test_redfish(void)
{
	char *path = NULL;

	ok(validate_redfish_id("22"), "id 22");
	ok(validate_redfish_id("admin000000005f4d3b5b"), "iLO id");
	ok(!validate_redfish_id(".."), "..");
	ok(!validate_redfish_id("%2e%2e"), "%%2e%%2e");
	ok(!validate_redfish_id("a?b"), "?");
	ok(!validate_redfish_id("a#b"), "#");
	ok(!validate_redfish_id("a/b"), "/");
	ok(!validate_redfish_id(""), "empty id");
	ok(validate_uri_path("/redfish/v1/SessionService/Sessions/22"), "a session path");
	ok(validate_uri_path("/redfish/v1/SessionService/Sessions/22/"), "with iLO's trailing slash");
	ok(!validate_uri_path("/redfish/v1/a b?c#d"), "space, query, fragment");
	ok(!validate_uri_path("/redfish/v1/../Systems"), "a .. segment");
	ok(!validate_uri_path("/redfish//v1"), "an empty segment");
	ok(!validate_uri_path("//"), "\"//\" (found by fuzz-validate)");
	ok(!validate_uri_path("/"), "\"/\" alone");
	ok(!validate_uri_path("redfish/v1"), "relative");
	ok(!validate_uri_path("/redfish/v1/%2e%2e"), "percent-encoding");

	const char *uri = "/redfish/v1/SessionService/Sessions";
	is_int(validate_session_location("/redfish/v1/SessionService/Sessions/22", info.base_url, uri, &path), 0,
	       "relative Location in the collection");
	is_str(path, "/redfish/v1/SessionService/Sessions/22", "its path");
	free(path);
	path = NULL;
	is_int(validate_session_location("https://bmc.example:443/redfish/v1/SessionService/Sessions/7", info.base_url,
					 uri, &path), 0, "absolute Location on the same origin");
	is_str(path, "/redfish/v1/SessionService/Sessions/7", "its path");
	free(path);
	path = NULL;
	is_int(validate_session_location("https://BMC.example/redfish/v1/SessionService/Sessions/7/", info.base_url,
					 uri, &path), 0, "default port left out, trailing slash");
	free(path);
	path = NULL;
	is_int(validate_session_location("/redfish/v1/Systems/System.Embedded.1", info.base_url, uri, &path), -EBADMSG,
	       "a Systems path");
	is_int(validate_session_location("https://evil.example/redfish/v1/SessionService/Sessions/7", info.base_url, uri,
					 &path), -EBADMSG, "another host");
	is_int(validate_session_location("http://bmc.example:443/redfish/v1/SessionService/Sessions/7", info.base_url,
					 uri, &path), -EBADMSG, "another scheme");
	is_int(validate_session_location("https://bmc.example:8443/redfish/v1/SessionService/Sessions/7", info.base_url,
					 uri, &path), -EBADMSG, "another port");
	is_int(validate_session_location("https://bmc.example:443.evil.example/redfish/v1/SessionService/Sessions/7",
					 info.base_url, uri, &path), -EBADMSG, "a host that starts like ours");
	is_int(validate_session_location("/redfish/v1/a b?c#d", info.base_url, uri, &path), -EBADMSG, "space, query, fragment");
	is_int(validate_session_location("/redfish/v1/SessionService/Sessions/../../Systems/1", info.base_url, uri, &path),
	       -EBADMSG, "dot-dot out of the collection");
	is_int(validate_session_location("/redfish/v1/SessionService/Sessions", info.base_url, uri, &path), -EBADMSG,
	       "the collection itself");
	is_int(validate_session_location("/redfish/v1/SessionService/Sessions/1/x", info.base_url, uri, &path), -EBADMSG,
	       "below a member");
	is_int(validate_session_location("/redfish/v1/SessionService/SessionsX/1", info.base_url, uri, &path), -EBADMSG,
	       "a sibling collection");
	ok(path == NULL, "no path handed out on failure");
}

/* What sh prints for echo <quoted s>: must be s itself. */
static void check_quote(const char *s, const char *what)
{
	char *q = shell_quote(s), *cmd = NULL, out[256] = "";
	FILE *p;

	if (asprintf(&cmd, "printf %%s %s", q) < 0) {
		abort();
	}
	p = popen(cmd, "r");
	size_t n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
	out[n] = 0;
	if (p) {
		pclose(p);
	}
	is_str(out, s, "sh reads the quoted %s back unchanged", what);
	free(q);
	free(cmd);
}

static void test_shell_quote(void)
{
	char *q = shell_quote("ASIA'$(touch /tmp/x)'");

	is_str(q, "'ASIA'\\''$(touch /tmp/x)'\\'''", "' written as '\\''");
	free(q);
	check_quote("plain", "plain word");
	check_quote("ASIA'$(echo pwned)'", "quote and $()");
	check_quote("`id` $HOME \\ \" ; |", "backquotes, $, backslash, double quote");
	check_quote("''''", "only quotes");
	check_quote("", "empty value");
}

static void test_json_int(void)
{
	json_t *j = json_integer(30);

	ok(validate_json_int(j, 1, 86400), "30 in range");
	ok(!validate_json_int(j, 31, 86400), "30 below 31");
	json_decref(j);
	j = json_real(30.0);
	ok(!validate_json_int(j, 1, 86400), "a real is no integer");
	json_decref(j);
}

static void test_jwt_exp_range(void)
{
	time_t exp = 0;

	/* {"exp":99999999999999} and {"exp":253402300799}, base64url. */
	is_int(jwt_expiry("e30.eyJleHAiOjk5OTk5OTk5OTk5OTk5fQ.c2ln", &exp), -EBADMSG, "JWT exp past year 9999 → EBADMSG");
	is_int(jwt_expiry("e30.eyJleHAiOjI1MzQwMjMwMDc5OX0.c2ln", &exp), 0, "JWT exp at 9999-12-31 is taken");
}

static struct http_response response(long status, const char *headers, const char *body)
{
	return (struct http_response){ .status = status, .body = (char *)body, .len = strlen(body),
				       .headers = (char *)headers };
}

static void test_aos_reply(void)
{
	struct auth_ctx ctx = { .info = &info };
	struct auth_session *s = NULL;
	struct http_response resp = response(200, "HTTP/1.1 200 OK\r\n\r\n", "{\"token\": \"abc\\r\\nX-Injected: yes\"}");

	is_int(aos_login_reply(&ctx, &resp, &s), -EBADMSG, "AOS: CR/LF in the token → EBADMSG");
	ok(s == NULL && strstr(ctx.error, "token"), "no session; status names the field: %s", ctx.error);
	ok(!strstr(ctx.error, "X-Injected"), "the offending value is not in the message");
	resp = response(200, "", "{\"token\": \"a\\u0000b\"}");
	is_int(aos_login_reply(&ctx, &resp, &s), -EBADMSG, "AOS: NUL in the token → EBADMSG");
	resp = response(200, "", "{\"token\": \"a b\"}");
	is_int(aos_login_reply(&ctx, &resp, &s), -EBADMSG, "AOS: space in the token → EBADMSG");
	resp = response(200, "", "{\"token\": \"good.token.here\"}");
	is_int(aos_login_reply(&ctx, &resp, &s), 0, "AOS: a clean token is taken");
	auth_session_free(s);
	s = NULL;

	const char *smuggle = "{\"token\":\"tok\\r\\nX-Smuggled: 1\\r\\nHost: evil.example\"}";
	is_int(aos_provider.session_load(&info, smuggle, strlen(smuggle), &s), -EINVAL,
	       "AOS: a session.json write with CR/LF in the token → EINVAL");
	ok(s == NULL, "nothing loaded");

	/* Nesting far deeper than any reply: jansson's depth limit, not the stack. */
	size_t depth = 100000;
	char *deep = malloc(2 * depth + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[2 * depth] = 0;
	resp = response(200, "", deep);
	is_int(aos_login_reply(&ctx, &resp, &s), -EBADMSG, "AOS: JSON nested 100,000 deep → EBADMSG");
	free(deep);
}

static void test_redfish_reply(void)
{
	struct auth_ctx ctx = { .info = &info };
	struct auth_session *s = NULL;
	const char *uri = "/redfish/v1/SessionService/Sessions";
	const char *body = "{\"Id\": \"22\", \"UserName\": \"root\"}";
	struct http_response resp;

	resp = response(201, "HTTP/1.1 201 Created\r\nX-Auth-Token: tok\r\nLocation: /redfish/v1/Systems/System.Embedded.1\r\n\r\n",
			body);
	is_int(redfish_session_reply(&ctx, uri, 1800, &resp, &s), -EBADMSG, "Redfish: Location outside Sessions → EBADMSG");
	ok(s == NULL && strstr(ctx.error, "Location"), "status names the field: %s", ctx.error);
	resp = response(201, "HTTP/1.1 201 Created\r\nX-Auth-Token: tok\r\nLocation: /redfish/v1/a b?c#d\r\n\r\n", body);
	is_int(redfish_session_reply(&ctx, uri, 1800, &resp, &s), -EBADMSG, "Redfish: Location with space, ? and # → EBADMSG");
	resp = response(201, "HTTP/1.1 201 Created\r\nX-Auth-Token: tok\r\n"
			"Location: https://evil.example/redfish/v1/SessionService/Sessions/22\r\n\r\n", body);
	is_int(redfish_session_reply(&ctx, uri, 1800, &resp, &s), -EBADMSG, "Redfish: Location on another host → EBADMSG");
	resp = response(201, "HTTP/1.1 201 Created\r\nX-Auth-Token: t\"ok\r\nLocation: /redfish/v1/SessionService/Sessions/22\r\n\r\n",
			body);
	is_int(redfish_session_reply(&ctx, uri, 1800, &resp, &s), -EBADMSG, "Redfish: a quote in X-Auth-Token → EBADMSG");
	ok(strstr(ctx.error, "X-Auth-Token") != NULL, "status names the header: %s", ctx.error);
	resp = response(201, "HTTP/1.1 201 Created\r\nX-Auth-Token: tok\r\nLocation: /redfish/v1/SessionService/Sessions/22\r\n\r\n",
			"{\"Id\": \"../../Systems\"}");
	is_int(redfish_session_reply(&ctx, uri, 1800, &resp, &s), -EBADMSG, "Redfish: a malformed Id → EBADMSG");
	resp = response(201, "HTTP/1.1 201 Created\r\nX-Auth-Token: tok\r\nLocation: /redfish/v1/SessionService/Sessions/22/\r\n\r\n",
			"{}");
	is_int(redfish_session_reply(&ctx, uri, 1800, &resp, &s), 0, "Redfish: iLO's trailing slash, no Id");
	is_str(s ? s->id : NULL, "22", "the id is the last segment");
	auth_session_free(s);
	s = NULL;

	const char *saved = "{\"id\":\"1\",\"location\":\"/redfish/v1/Systems/1\",\"x_auth_token\":\"tok\","
			    "\"sessions_uri\":\"/redfish/v1/SessionService/Sessions\"}";
	is_int(redfish_provider.session_load(&info, saved, strlen(saved), &s), -EINVAL,
	       "Redfish: a saved session outside the collection → EINVAL");
}

static const char *sts_reply(const char *id, const char *secret, const char *token, const char *exp, char *buf,
			     size_t size)
{
	snprintf(buf, size,
		 "<GetSessionTokenResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetSessionTokenResult>"
		 "<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
		 "<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>"
		 "</GetSessionTokenResult></GetSessionTokenResponse>", id, secret, token, exp);
	return buf;
}

static void check_sts(const char *body, int want, const char *field, const char *what)
{
	struct auth_ctx ctx = { .info = &info };
	struct auth_session *s = NULL;
	struct http_response resp = response(200, "", body);
	int r = sts_login_reply(&ctx, &resp, &s);

	is_int(r, want, "STS: %s → %d", what, want);
	if (field) {
		ok(strstr(ctx.error, field) != NULL, "status names %s: %s", field, ctx.error);
	}
	auth_session_free(s);
}

static void test_sts_reply(void)
{
	const char *id = "ASIAIOSFODNN7EXAMPLE", *key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		   *token = "IQoJb3JpZ2luX2VjEE8aCXVzLWVhc3QtMSJHMEUCIQ==", *exp = "2030-01-01T00:00:00Z";
	char buf[4096], inner[2048];

	check_sts(sts_reply(id, key, token, exp, buf, sizeof(buf)), 0, NULL, "well-formed credentials");
	check_sts(sts_reply("ASIA'$(touch /tmp/x)'", key, token, exp, buf, sizeof(buf)), -EBADMSG, "AccessKeyId",
		  "shell in AccessKeyId");
	check_sts(sts_reply(id, "a'$(id)'", token, exp, buf, sizeof(buf)), -EBADMSG, "SecretAccessKey",
		  "shell in SecretAccessKey");
	check_sts(sts_reply(id, key, "tok&#10;X: y", exp, buf, sizeof(buf)), -EBADMSG, "SessionToken", "LF in SessionToken");
	check_sts(sts_reply(id, key, token, "2030-01-01T00:00:00Z'$(id)'", buf, sizeof(buf)), -EBADMSG, "Expiration",
		  "shell in Expiration");
	check_sts(sts_reply(id, "", token, exp, buf, sizeof(buf)), -EBADMSG, NULL, "empty SecretAccessKey");

	/* An XXE: the entity is never read; the reply is refused. */
	snprintf(buf, sizeof(buf), "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>%s",
		 sts_reply(id, "&xxe;", token, exp, inner, sizeof(inner)));
	check_sts(buf, -EBADMSG, NULL, "XXE with a file:// entity");

	/* Billion laughs: refused before any expansion, at once. */
	char laughs[2048] = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">";
	for (int i = 1; i <= 9; i++) {
		char prev[8], line[160] = "";
		snprintf(prev, sizeof(prev), i > 1 ? "lol%d" : "lol", i - 1);
		snprintf(line, sizeof(line), "<!ENTITY lol%d \"", i);
		for (int k = 0; k < 10; k++) {
			snprintf(line + strlen(line), sizeof(line) - strlen(line), "&%s;", prev);
		}
		strcat(line, "\">");
		strcat(laughs, line);
	}
	strcat(laughs, "]><GetSessionTokenResponse><AccessKeyId>&lol9;</AccessKeyId></GetSessionTokenResponse>");
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	check_sts(laughs, -EBADMSG, NULL, "billion laughs");
	clock_gettime(CLOCK_MONOTONIC, &b);
	ok((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9 < 1.0, "billion laughs refused in under a second");

	struct auth_ctx ctx = { .info = &info };
	struct auth_session *s = NULL;
	struct http_response resp = response(302, "HTTP/1.1 302 Found\r\nLocation: https://evil.example/\r\n\r\n", "");
	is_int(sts_login_reply(&ctx, &resp, &s), -EIO, "STS: a redirect is not followed → EIO");
}

static void test_sts_env(void)
{
	struct auth_session *s = auth_session_new();
	struct auth_blob *b = NULL;
	unsigned index;
	const struct auth_file_info *env = auth_provider_file((size_t)auth_provider_index("sts"), "env", &index);
	const char *extra = "{\"Version\":1,\"AccessKeyId\":\"ASIA'$(touch /tmp/x)'\",\"SecretAccessKey\":\"k\","
			    "\"SessionToken\":\"t\",\"Expiration\":\"2030-01-01T00:00:00Z\"}";

	s->extra = secret_new_str(extra);
	is_int(sts_provider.render(&info, s, env, &b), 0, "env renders even a hostile stored value");
	ok(b && strstr(b->data, "export AWS_ACCESS_KEY_ID='ASIA'\\''$(touch /tmp/x)'\\'''\n"), "quoted with '\\''");
	auth_blob_unref(b);
	secret_free(s->extra);
	s->extra = secret_new_str("{\"AccessKeyId\":\"A\\nB\",\"SecretAccessKey\":\"k\",\"SessionToken\":\"t\",\"Expiration\":\"e\"}");
	b = NULL;
	is_int(sts_provider.render(&info, s, env, &b), -EBADMSG, "env refuses a value with a line break");
	auth_session_free(s);
}

int main(void)
{
	secret_init(1 << 20);
	plan(-1);
	test_token();
	test_aws();
	test_redfish();
	test_shell_quote();
	test_json_int();
	test_jwt_exp_range();
	test_aos_reply();
	test_redfish_reply();
	test_sts_reply();
	test_sts_env();
	return done();
}
