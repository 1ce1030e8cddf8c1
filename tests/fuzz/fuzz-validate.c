/* validate.c: every validator on the input as a string. What a validator
 * accepts must hold the property the readers of our files rely on (no CR, LF,
 * space or quote in a token; no way out of the Sessions collection), and
 * shell_quote() must read back, under POSIX sh's rules, as the input itself. */
#include <errno.h>
#include <strings.h>

#include "fuzz.h"
#include "lib/validate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static bool only(const char *s, const char *set)
{
	return strspn(s, set) == strlen(s);
}

#define UPPER_DIGITS "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#define ID_CHARS "abcdefghijklmnopqrstuvwxyz" UPPER_DIGITS "-_."

static void check_grammars(const char *s)
{
	if (validate_token(s)) {
		for (const char *p = s; *p; p++) {
			FUZZ_CHECK(*p > ' ' && *p < 0x7f && !strchr("\"'`\\", *p), "token with byte %#x", (unsigned char)*p);
		}
	}
	if (validate_aws_key_id(s)) {
		FUZZ_CHECK(strlen(s) >= 16 && strlen(s) <= 128 && only(s, UPPER_DIGITS), "key id");
	}
	if (validate_base64(s)) {
		FUZZ_CHECK(*s && only(s, "abcdefghijklmnopqrstuvwxyz" UPPER_DIGITS "+/="), "base64");
	}
	if (validate_rfc3339(s)) {
		FUZZ_CHECK(strlen(s) >= 20 && s[4] == '-' && s[10] == 'T' && only(s, "0123456789-:T.Z+"), "date");
	}
	if (validate_redfish_id(s)) {
		FUZZ_CHECK(*s && s[0] != '.' && only(s, ID_CHARS), "id");
	}
	if (validate_uri_path(s)) {
		FUZZ_CHECK(s[0] == '/' && only(s, ID_CHARS "/") && !strstr(s, "/.") && !strstr(s, "//"), "path");
	}
}

/* The id at the start of s, up to an optional trailing '/'. */
static bool id_prefix_valid(const char *s)
{
	_cleanup_free_ char *id = strndup(s, strcspn(s, "/"));

	return id && validate_redfish_id(id);
}

static void check_location(const char *s)
{
	static const char uri[] = "/redfish/v1/SessionService/Sessions";
	char *path = NULL;
	int r = validate_session_location(s, "https://bmc.example.com:443", uri, &path);

	if (r == 0) {
		const char *id = path + strlen(uri) + 1;
		FUZZ_CHECK(strncmp(path, uri, strlen(uri)) == 0 && path[strlen(uri)] == '/', "outside: %s", path);
		const char *slash = strchr(id, '/');
		FUZZ_CHECK(validate_uri_path(path) && id_prefix_valid(id) && (!slash || !slash[1]), "member: %s",
			   path);
		FUZZ_CHECK(!strstr(s, "://") || strncasecmp(s, "https://bmc.example.com", 23) == 0, "origin: %s", s);
	} else {
		FUZZ_CHECK((r == -EBADMSG || r == -ENOMEM) && !path, "r=%d", r);
	}
	free(path);
}

/* POSIX sh: outside quotes only '...' and \' may appear; inside, every byte is literal. */
static void check_quote(const char *s)
{
	_cleanup_free_ char *q = shell_quote(s), *back = malloc(strlen(s) + 1);
	size_t n = 0;
	bool in = false;

	FUZZ_CHECK(q && back, "ENOMEM");
	for (const char *p = q; *p; p++) {
		if (in) {
			if (*p == '\'') {
				in = false;
			} else {
				FUZZ_CHECK(n < strlen(s), "longer than the input");
				back[n++] = *p;
			}
		} else if (*p == '\'') {
			in = true;
		} else {
			FUZZ_CHECK(p[0] == '\\' && p[1] == '\'' && n < strlen(s), "unquoted byte %#x", (unsigned char)*p);
			back[n++] = *++p;
		}
	}
	back[n] = 0;
	FUZZ_CHECK(!in && strcmp(back, s) == 0, "does not read back");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *s = fuzz_strndup(data, size);

	check_grammars(s);
	check_location(s);
	check_quote(s);
	fuzz_check_secret_heap();
	return 0;
}
