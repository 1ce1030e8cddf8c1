/* jwt_expiry() on the input as a token, base64url_decode() on the raw bytes. */
#include <errno.h>

#include "fuzz.h"
#include "providers/provider.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static void check_decode(const uint8_t *data, size_t size)
{
	char *out = NULL;
	size_t len = (size_t)-1;
	int r = base64url_decode((const char *)data, size, &out, &len);

	if (r == 0) {
		/* Unpadded base64: every 4 characters are 3 bytes, a tail of 2 or 3 is 1 or 2. */
		FUZZ_CHECK(out && len == size / 4 * 3 + (size % 4 ? size % 4 - 1 : 0), "%zu bytes from %zu", len,
			   size);
		FUZZ_CHECK(out[len] == 0, "not NUL-terminated");
	} else {
		FUZZ_CHECK((r == -EBADMSG || r == -ENOMEM) && !out && len == (size_t)-1, "r=%d", r);
	}
	free(out);
}

static void check_expiry(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *token = fuzz_strndup(data, size);
	time_t exp = -1;
	int r = jwt_expiry(token, &exp);

	if (r == 0) {
		FUZZ_CHECK(exp > 0, "expiry %lld", (long long)exp);
	} else {
		FUZZ_CHECK((r == -EBADMSG || r == -ENODATA || r == -ENOMEM) && exp == -1, "r=%d", r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decode(data, size);
	check_expiry(data, size);
	fuzz_check_secret_heap();
	return 0;
}
