/* OAuth 2.0's JSON: the token endpoint's replies (RFC 6749 §5.1, §5.2), the
 * revocation endpoint's errors (RFC 7009), and session.json as saved. The
 * input starts with four bytes of choices:
 *
 *   kind     t  oauth2_token_reply   e  oauth2_error_reply
 *            L  session_load                     (other bytes: modulo)
 *   status   three digits, the HTTP status of a response
 *
 * then the body of the response, or the text of a saved session (not
 * NUL-terminated). A session that parses is rendered, saved, and must load
 * back. */
#include <errno.h>
#include <stdint.h>

#include "fuzz.h"
#include "providers/replies.h"

#define PREFIX_LEN 4

static const char kinds[] = "teL";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static void response(char kind, long status, const uint8_t *data, size_t size)
{
	const struct target_info info = fuzz_target_info(&oauth2_provider);
	struct auth_ctx ctx = { .info = &info };
	_cleanup_free_ char *body = fuzz_strndup(data, size), *headers = fuzz_strndup(data, 0);
	const struct http_response resp = { .status = status, .body = body, .len = size, .headers = headers };
	_cleanup_session_ struct auth_session *s = NULL;
	int r;

	if (kind == 'e') {
		r = oauth2_error_reply(&ctx, "revocation", &resp);
		FUZZ_CHECK(r < 0 && ctx.error[0], "oauth2_error_reply: r=%d, message '%s'", r, ctx.error);
		return;
	}
	r = oauth2_token_reply(&ctx, &resp, &s);
	FUZZ_CHECK(r <= 0 && (r == 0) == !!s, "oauth2_token_reply: r=%d, session %p", r, (void *)s);
	FUZZ_CHECK(r == 0 || r == -ENOMEM || ctx.error[0], "oauth2_token_reply: r=%d without a message", r);
	FUZZ_CHECK(r < 0 || status == 200, "oauth2_token_reply: a session from HTTP %ld", status);
	if (s) {
		FUZZ_CHECK(s->extra, "oauth2_token_reply: a session without its details");
		fuzz_session_exercise(&oauth2_provider, &info, s);
	}
}

static void session_load(const uint8_t *data, size_t size)
{
	const struct target_info info = fuzz_target_info(&oauth2_provider);
	_cleanup_session_ struct auth_session *s = NULL;
	int r;

	r = oauth2_provider.session_load(&info, (const char *)data, size, &s);
	FUZZ_CHECK(r == 0 ? s != NULL : (r == -EINVAL || r == -ENOMEM) && !s, "oauth2 session_load: r=%d", r);
	if (s) {
		fuzz_session_exercise(&oauth2_provider, &info, s);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *k;
	char kind;

	if (size < PREFIX_LEN) {
		return -1; /* not worth keeping */
	}
	k = data[0] ? strchr(kinds, data[0]) : NULL;
	kind = k ? *k : kinds[data[0] % (sizeof(kinds) - 1)];
	if (kind == 'L') {
		session_load(data + PREFIX_LEN, size - PREFIX_LEN);
	} else {
		response(kind, fuzz_digit(data[1]) * 100 + fuzz_digit(data[2]) * 10 + fuzz_digit(data[3]),
			 data + PREFIX_LEN, size - PREFIX_LEN);
	}
	fuzz_check_secret_heap();
	return 0;
}
