/* A write to `credentials`: credentials_parse() (aos, Redfish) and the STS key
 * pair parser. The input is a write buffer: not NUL-terminated. */
#include <errno.h>

#include "fuzz.h"
#include "providers/replies.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static bool printable(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			return false;
		}
	}
	return true;
}

/* As files.c calls it: outputs freed by cleanup, whatever the result. */
static void parse(int (*fn)(const char *, size_t, char **, struct secret **), const uint8_t *data, size_t size,
		  const char *what, bool (*user_ok)(const char *))
{
	_cleanup_secret_ struct secret *password = NULL;
	_cleanup_free_ char *user = NULL;
	int r = fn((const char *)data, size, &user, &password);

	if (r == 0) {
		FUZZ_CHECK(user && *user && user_ok(user), "%s: user not valid", what);
		FUZZ_CHECK(password && password->data[password->len] == 0, "%s: password not set", what);
		FUZZ_CHECK(size >= password->len, "%s: password longer than the write", what);
	} else {
		FUZZ_CHECK(r == -EINVAL || r == -ENOMEM, "%s: r=%d", what, r);
		FUZZ_CHECK(!user && !password, "%s: outputs written on failure (r=%d)", what, r);
	}
}

static bool sts_key_id(const char *id)
{
	size_t len = strlen(id);

	return len >= 16 && len <= 128 && strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse(credentials_parse, data, size, "credentials_parse", printable);
	parse(sts_provider.parse_credentials, data, size, "sts parse_credentials", sts_key_id);
	fuzz_check_secret_heap();
	return 0;
}
