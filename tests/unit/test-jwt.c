/* jwt_expiry() and base64url_decode(): tokens are built here from JSON text,
 * encoded with the test's own base64url encoder (no padding). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/provider.h"
#include "tap.h"

/* bytes → base64url without padding, into a newly allocated string. */
static char *b64url(const void *data, size_t len)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = data;
	char *out = malloc(len / 3 * 4 + 5), *o = out;

	if (!out) {
		abort();
	}
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1) {
			v |= (unsigned)p[i + 1] << 8;
		}
		if (n > 2) {
			v |= p[i + 2];
		}
		*o++ = alphabet[v >> 18 & 63];
		*o++ = alphabet[v >> 12 & 63];
		if (n > 1) {
			*o++ = alphabet[v >> 6 & 63];
		}
		if (n > 2) {
			*o++ = alphabet[v & 63];
		}
	}
	*o = 0;
	return out;
}

/* header.payload.signature from the payload's JSON text. */
static char *make_jwt(const char *payload_json)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	static const char sig[] = "\x01\x02\xfb\xff\xfe signature bytes";
	char *h = b64url(header, strlen(header));
	char *p = b64url(payload_json, strlen(payload_json));
	char *s = b64url(sig, sizeof(sig) - 1);
	char *jwt;

	if (asprintf(&jwt, "%s.%s.%s", h, p, s) < 0) {
		abort();
	}
	free(h);
	free(p);
	free(s);
	return jwt;
}

/* The payload part of a token built by make_jwt(), copied. */
static char *payload_of(const char *jwt)
{
	const char *a = strchr(jwt, '.'), *b = strrchr(jwt, '.');

	return strndup(a + 1, (size_t)(b - a - 1));
}

static void check_decode(const char *in, const char *want, size_t want_len, const char *what)
{
	char *out = NULL;
	size_t len = 12345;
	int r = base64url_decode(in, strlen(in), &out, &len);

	is_int(r, 0, "decode %s: succeeds", what);
	is_int(len, want_len, "decode %s: length", what);
	ok(out && memcmp(out, want, want_len) == 0, "decode %s: bytes", what);
	ok(out && out[want_len] == 0, "decode %s: NUL-terminated", what);
	free(out);
}

static void check_decode_fails(const char *in, size_t len, const char *what)
{
	char *out = (char *)"untouched";
	size_t out_len = 777;

	is_int(base64url_decode(in, len, &out, &out_len), -EBADMSG, "decode %s: -EBADMSG", what);
	ok(strcmp(out, "untouched") == 0 && out_len == 777, "decode %s: outputs untouched", what);
}

static void test_base64url(void)
{
	check_decode("", "", 0, "empty");
	check_decode("Zg", "f", 1, "'Zg' (2 padding chars missing)");
	check_decode("Zm8", "fo", 2, "'Zm8' (1 padding char missing)");
	check_decode("Zm9v", "foo", 3, "'Zm9v' (no padding)");
	check_decode("Zm9vYmFy", "foobar", 6, "'Zm9vYmFy'");
	check_decode("-_8", "\xfb\xff", 2, "'-_8' (url alphabet)");
	check_decode("_-__", "\xff\xef\xff", 3, "'_-__' (url alphabet)");
	check_decode("AAEC", "\x00\x01\x02", 3, "'AAEC' (NUL byte inside)");

	/* Only a prefix of the buffer is decoded. */
	{
		char *out = NULL;
		size_t len = 0;

		is_int(base64url_decode("Zm9vYmFy", 4, &out, &len), 0, "decode prefix of length 4");
		is_str(out, "foo", "decode prefix: content");
		free(out);
	}

	check_decode_fails("Z", 1, "one char");
	check_decode_fails("Zm9vY", 5, "length 4n+1");
	check_decode_fails("Zm+v", 4, "'+' (standard alphabet)");
	check_decode_fails("Zm/v", 4, "'/' (standard alphabet)");
	check_decode_fails("Zm9v!A", 6, "'!'");
	check_decode_fails("Zm 9vY", 6, "space");
	check_decode_fails("Zm9\nvA", 6, "newline");
	check_decode_fails("Zm9v\0Zm9v", 9, "embedded NUL");
	check_decode_fails("Z\xc3\xa9v", 4, "non-ASCII");
}

static void check_exp(const char *payload, int want_r, time_t want, const char *what)
{
	char *jwt = make_jwt(payload);
	time_t exp = 42;
	int r = jwt_expiry(jwt, &exp);

	is_int(r, want_r, "jwt %s: returns %d", what, want_r);
	is_int(exp, want_r == 0 ? want : 42, "jwt %s: %s", what, want_r == 0 ? "expiry" : "expiry untouched");
	free(jwt);
}

static void check_raw(const char *token, int want_r, const char *what)
{
	time_t exp = 42;

	is_int(jwt_expiry(token, &exp), want_r, "jwt %s: returns %d", what, want_r);
	is_int(exp, 42, "jwt %s: expiry untouched", what);
}

static void test_padding_and_alphabet(void)
{
	/* The payload's length mod 3 decides how many '=' standard base64 would
	 * need: 0 → none, 2 → one, 1 → two. Pad the JSON with x's to hit each. */
	for (int need = 0; need <= 2; need++) {
		char payload[128], *jwt, *p;
		int base = snprintf(payload, sizeof(payload), "{\"exp\":1700000000,\"x\":\"\"}");
		int want_mod = need == 0 ? 0 : need == 1 ? 2 : 1;
		int k = (want_mod - base % 3 + 3) % 3;
		time_t exp = 0;

		snprintf(payload, sizeof(payload), "{\"exp\":1700000000,\"x\":\"%.*s\"}", k, "xx");
		is_int(strlen(payload) % 3, want_mod, "payload for %d padding char(s) has length %% 3 == %d", need, want_mod);
		jwt = make_jwt(payload);
		p = payload_of(jwt);
		is_int((4 - strlen(p) % 4) % 4, need, "encoded payload lacks %d padding char(s)", need);
		is_int(jwt_expiry(jwt, &exp), 0, "jwt needing %d padding char(s): parsed", need);
		is_int(exp, 1700000000, "jwt needing %d padding char(s): expiry", need);
		free(p);
		free(jwt);
	}

	/* '?' and '>' runs encode to '_' and '-' in the payload. */
	for (int shift = 0; shift < 3; shift++) {
		char payload[128], *jwt, *p;
		time_t exp = 0;

		snprintf(payload, sizeof(payload), "{\"exp\":1800000000,\"s\":\"%.*s?\?\?>>>?\?\?>>>\"}", shift, "aa");
		jwt = make_jwt(payload);
		p = payload_of(jwt);
		ok(strchr(p, '-') && strchr(p, '_'), "payload encoding (shift %d) contains '-' and '_': %s", shift, p);
		is_int(jwt_expiry(jwt, &exp), 0, "jwt with '-' and '_' (shift %d): parsed", shift);
		is_int(exp, 1800000000, "jwt with '-' and '_' (shift %d): expiry", shift);
		free(p);
		free(jwt);
	}
}

static void test_claims(void)
{
	check_exp("{\"sub\":\"admin\",\"exp\":1732377600,\"iat\":1732291200}", 0, 1732377600, "integer exp");
	check_exp("{\"exp\":1}", 0, 1, "exp 1");
	check_exp("{\"exp\":253402300799}", 0, 253402300799, "exp in year 9999");
	check_exp("{\"exp\":1732377600.75}", 0, 1732377600, "real exp");
	check_exp("{\"exp\":1.7e9}", 0, 1700000000, "real exp with exponent");
	check_exp("{\"sub\":\"admin\",\"iat\":1732291200}", -ENODATA, 0, "no exp");
	check_exp("{}", -ENODATA, 0, "empty claims");
	check_exp("{\"exp\":\"1732377600\"}", -EBADMSG, 0, "exp a string");
	check_exp("{\"exp\":-5}", -EBADMSG, 0, "exp negative");
	check_exp("{\"exp\":-1.5}", -EBADMSG, 0, "exp negative real");
	check_exp("{\"exp\":0}", -EBADMSG, 0, "exp zero");
	check_exp("{\"exp\":null}", -EBADMSG, 0, "exp null");
	check_exp("{\"exp\":true}", -EBADMSG, 0, "exp boolean");
	check_exp("{\"exp\":[1732377600]}", -EBADMSG, 0, "exp an array");
	check_exp("not json", -EBADMSG, 0, "payload not JSON");
	check_exp("{\"exp\":1732377600", -EBADMSG, 0, "payload truncated JSON");
	check_exp("[1732377600]", -EBADMSG, 0, "payload a JSON array");
	check_exp("\"exp\"", -EBADMSG, 0, "payload a JSON string");
	check_exp("", -EBADMSG, 0, "empty payload");
	check_exp("{\"exp\":1732377600} trailing", -EBADMSG, 0, "payload with trailing garbage");

	/* A real exp beyond time_t's range must not turn into a bogus time. */
	check_exp("{\"exp\":1e300}", -EBADMSG, 0, "exp 1e300");
	check_exp("{\"exp\":1e19}", -EBADMSG, 0, "exp 1e19 (beyond INT64_MAX)");
	check_exp("{\"exp\":0.5}", -EBADMSG, 0, "exp 0.5 (truncates to 0, which means 'no expiry')");
}

static void test_malformed(void)
{
	char *jwt = make_jwt("{\"exp\":1732377600}");
	char *p = payload_of(jwt), *t;
	time_t exp = 0;

	check_raw("", -EBADMSG, "empty string");
	check_raw("no-dots-at-all", -EBADMSG, "no dots");
	if (asprintf(&t, "eyJhbGciOiJIUzI1NiJ9.%s", p) < 0) {
		abort();
	}
	check_raw(t, -EBADMSG, "one dot (no signature part)");
	free(t);
	check_raw("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MzIzNzc2MDB9!.sig", -EBADMSG, "bad base64 character in payload");
	exp = 0;
	is_int(jwt_expiry("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjEyfQ.sig", &exp), 0, "unpadded payload {\"exp\":12} parses");
	is_int(exp, 12, "unpadded payload {\"exp\":12}: expiry");
	check_raw("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjEyfQ==.sig", -EBADMSG, "padded payload (not base64url)");
	check_raw("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MzIzNzc2MDB9X.sig", -EBADMSG, "payload of length 4n+1");
	check_raw("h..s", -EBADMSG, "empty payload part");

	/* The sanity token: same payload, well formed, parses. */
	is_int(jwt_expiry(jwt, &exp), 0, "well-formed token parses");
	is_int(exp, 1732377600, "well-formed token expiry");
	/* Signature empty is still header.payload.signature. */
	if (asprintf(&t, "eyJhbGciOiJIUzI1NiJ9.%s.", p) < 0) {
		abort();
	}
	exp = 0;
	is_int(jwt_expiry(t, &exp), 0, "token with empty signature parses");
	is_int(exp, 1732377600, "token with empty signature: expiry");
	free(t);
	free(p);
	free(jwt);
}

int main(void)
{
	test_base64url();
	test_padding_and_alphabet();
	test_claims();
	test_malformed();
	return done();
}
