/* sts_login_reply(): STS answers GetSessionToken in XML. The input is three
 * digits of HTTP status, then the body. A session that parses is rendered,
 * saved, and must load back. */
#include <errno.h>

#include "fuzz.h"
#include "providers/replies.h"

#define PREFIX_LEN 3

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static void login_reply(long status, const uint8_t *data, size_t size)
{
	const struct target_info info = fuzz_target_info(&sts_provider);
	struct auth_ctx ctx = { .info = &info };
	_cleanup_session_ struct auth_session *s = NULL;
	_cleanup_free_ char *body = fuzz_strndup(data, size), *headers = fuzz_strndup(data, 0);
	int r;

	r = sts_login_reply(&ctx, &(struct http_response){ .status = status, .body = body, .len = size, .headers = headers },
			    &s);
	FUZZ_CHECK(r <= 0 && (r == 0) == !!s, "r=%d, session %p", r, (void *)s);
	FUZZ_CHECK(r == 0 || r == -ENOMEM || ctx.error[0], "r=%d without a message", r);
	if (s) {
		FUZZ_CHECK(s->id && s->extra && s->expires_at > 0, "incomplete session");
		fuzz_session_exercise(&sts_provider, &info, s);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < PREFIX_LEN) {
		return -1; /* not worth keeping */
	}
	login_reply(fuzz_digit(data[0]) * 100 + fuzz_digit(data[1]) * 10 + fuzz_digit(data[2]), data + PREFIX_LEN,
		    size - PREFIX_LEN);
	fuzz_check_secret_heap();
	return 0;
}
