/* The providers' JSON: AOS and Redfish responses, and session.json as saved or
 * written (aos, Redfish, STS). The input starts with five bytes of choices:
 *
 *   kind     a  aos_login_reply         r  redfish_session_reply
 *            m  redfish_members_reply   e  redfish_error_reply
 *            A, R, S  session_load of aos, Redfish, STS   (other bytes: modulo)
 *   status   three digits, the HTTP status of a response
 *   timeout  one digit, the SessionTimeout the BMC announced (redfish_session_reply)
 *
 * then, for a response, the raw header block up to and including the first
 * "\r\n\r\n" (none: no headers) and the body; for session_load, the text as
 * written to session.json (not NUL-terminated). A session that parses is
 * rendered, saved, and must load back. */
#include <errno.h>
#include <stdint.h>

#include "fuzz.h"
#include "providers/replies.h"

#define PREFIX_LEN 5

static const char kinds[] = "armeARS";

/* What session_timeout() may hand over: any positive JSON integer. */
static const json_int_t timeouts[] = {
	1800, 1, 30, 600, 3600, 86400, INT32_MAX, INT64_C(1) << 32, INT64_MAX / 2, INT64_MAX,
};
_Static_assert(ELEMENTSOF(timeouts) == 10, "one timeout per digit");

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

/* ret is set exactly when r is 0; a failure is put in words. */
static void check_result(const struct auth_ctx *ctx, const char *what, int r, bool set)
{
	FUZZ_CHECK(r <= 0, "%s: r=%d", what, r);
	FUZZ_CHECK((r == 0) == set, "%s: r=%d but output %s", what, r, set ? "written" : "missing");
	FUZZ_CHECK(r == 0 || r == -ENOMEM || ctx->error[0], "%s: r=%d without a message", what, r);
}

static void response(char kind, long status, json_int_t timeout, const uint8_t *data, size_t size)
{
	const struct auth_provider *p = kind == 'a' ? &aos_provider : &redfish_provider;
	const struct target_info info = fuzz_target_info(p);
	struct auth_ctx ctx = { .info = &info };
	const uint8_t *end = memmem(data, size, "\r\n\r\n", 4);
	size_t hlen = end ? (size_t)(end - data) + 4 : 0;
	_cleanup_free_ char *headers = fuzz_strndup(data, hlen), *body = fuzz_strndup(data + hlen, size - hlen);
	const struct http_response resp = { .status = status, .body = body, .len = size - hlen, .headers = headers };
	_cleanup_session_ struct auth_session *s = NULL;
	char **ids = NULL;
	size_t n = 0;
	int r;

	switch (kind) {
	case 'a':
		r = aos_login_reply(&ctx, &resp, &s);
		check_result(&ctx, "aos_login_reply", r, s);
		break;
	case 'r':
		r = redfish_session_reply(&ctx, "/redfish/v1/SessionService/Sessions", timeout, &resp, &s);
		check_result(&ctx, "redfish_session_reply", r, s);
		FUZZ_CHECK(r < 0 || (s->id && s->location && s->extra), "redfish_session_reply: incomplete session");
		break;
	case 'm':
		r = redfish_members_reply(&ctx, &resp, &ids, &n);
		check_result(&ctx, "redfish_members_reply", r, ids);
		for (size_t i = 0; i < n; i++) {
			FUZZ_CHECK(ids[i] && auth_session_id_valid(ids[i]), "member %zu not a valid id", i);
		}
		FUZZ_CHECK(r < 0 || !ids[n], "member list not NULL-terminated");
		auth_strv_free(ids, n);
		return;
	default:
		r = redfish_error_reply(&ctx, "login", &resp);
		FUZZ_CHECK(r < 0 && ctx.error[0], "redfish_error_reply: r=%d, message '%s'", r, ctx.error);
		return;
	}
	if (s) {
		fuzz_session_exercise(p, &info, s);
	}
}

static void session_load(char kind, const uint8_t *data, size_t size)
{
	const struct auth_provider *p = kind == 'A' ? &aos_provider : kind == 'R' ? &redfish_provider : &sts_provider;
	const struct target_info info = fuzz_target_info(p);
	_cleanup_session_ struct auth_session *s = NULL;
	int r;

	r = p->session_load(&info, (const char *)data, size, &s);
	FUZZ_CHECK(r == 0 ? s != NULL : (r == -EINVAL || r == -ENOMEM) && !s, "%s session_load: r=%d", p->name, r);
	if (s) {
		fuzz_session_exercise(p, &info, s);
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
	if (strchr("ARS", kind)) {
		session_load(kind, data + PREFIX_LEN, size - PREFIX_LEN);
	} else {
		response(kind, fuzz_digit(data[1]) * 100 + fuzz_digit(data[2]) * 10 + fuzz_digit(data[3]),
			 timeouts[fuzz_digit(data[4])], data + PREFIX_LEN, size - PREFIX_LEN);
	}
	fuzz_check_secret_heap();
	return 0;
}
