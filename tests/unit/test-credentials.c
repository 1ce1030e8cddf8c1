/* credentials_parse(): what a write to a target's `credentials` file may hold. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/provider.h"
#include "tap.h"

static void check_ok(const char *data, size_t len, const char *user, const char *password, size_t password_len,
		     const char *what)
{
	char *u = NULL;
	struct secret *p = NULL;
	int r = credentials_parse(data, len, &u, &p);

	is_int(r, 0, "%s: accepted", what);
	is_str(u, user, "%s: user", what);
	is_int(p ? p->len : 0, password_len, "%s: password length", what);
	ok(p && memcmp(p->data, password, password_len) == 0 && p->data[password_len] == 0,
	   "%s: password bytes", what);
	free(u);
	secret_free(p);
}

static void check_ok_str(const char *data, const char *user, const char *password, const char *what)
{
	check_ok(data, strlen(data), user, password, strlen(password), what);
}

static void check_einval(const char *data, size_t len, const char *what)
{
	char *u = (char *)"untouched";
	struct secret *p = (struct secret *)0x1;
	int r = credentials_parse(data, len, &u, &p);

	is_int(r, -EINVAL, "%s: -EINVAL", what);
	ok(strcmp(u, "untouched") == 0 && p == (struct secret *)0x1, "%s: outputs untouched", what);
	if (r == 0) {
		free(u);
		secret_free(p);
	}
}

static void check_einval_str(const char *data, const char *what)
{
	check_einval(data, strlen(data), what);
}

int main(void)
{
	secret_init(1 << 20);

	/* user:password */
	check_ok_str("user:pass", "user", "pass", "user:pass");
	check_ok_str("user:pa:ss", "user", "pa:ss", "password keeps its colon");
	check_ok_str("user::", "user", ":", "password is a single colon");
	check_ok_str("user:pass\n", "user", "pass", "trailing LF stripped");
	check_ok_str("user:pass\r\n", "user", "pass", "trailing CRLF stripped");
	/* Saved as JSON: only well-formed UTF-8 (issue 12: EINVAL, not ENOMEM). */
	check_ok_str("us\xe2\x82\xacr:p\xc3\xa4ss\xf0\x9f\x94\x91", "us\xe2\x82\xacr", "p\xc3\xa4ss\xf0\x9f\x94\x91", "UTF-8 user and password");
	check_einval_str("user:pass\xff", "invalid UTF-8 byte in the password");
	check_einval_str("us\xc3r:pass", "truncated UTF-8 sequence in the user");
	check_einval_str("user:pa\xc0\xafss", "overlong UTF-8 form");
	check_einval_str("user:pa\xed\xa0\x80ss", "UTF-16 surrogate in UTF-8");
	check_einval_str("user:pass\xe2\x82", "UTF-8 sequence cut at the end");
	check_einval_str("user:pa\xf4\x90\x80\x80ss", "code point past U+10FFFF");
	check_ok_str("admin@corp.example:p@ss w0rd!{}\"'", "admin@corp.example", "p@ss w0rd!{}\"'",
		     "spaces and punctuation kept");
	check_ok_str("u:p", "u", "p", "one-character user and password");
	check_ok_str("us\xc3\xa9r:p\xc3\xa4ss", "us\xc3\xa9r", "p\xc3\xa4ss", "UTF-8 kept");
	check_ok_str(" user:pass ", " user", "pass ", "inner whitespace not trimmed");
	/* Only the bytes given count, not what follows them. */
	check_ok("user:passEXTRA", 9, "user", "pass", 4, "length bounds the input");

	/* JSON */
	check_ok_str("{\"username\":\"admin\",\"password\":\"s3cr:et\"}", "admin", "s3cr:et", "JSON");
	check_ok_str("{\"password\":\"pw\",\"username\":\"admin\"}\n", "admin", "pw", "JSON, keys reversed, LF");
	check_ok_str("{ \"username\" : \"admin\" ,\n \"password\" : \"pw\" }\r\n", "admin", "pw",
		     "JSON with whitespace, CRLF");
	check_ok_str("{\"username\":\"admin\",\"password\":\"pw\",\"extra\":1}", "admin", "pw",
		     "JSON with an extra field");
	check_ok_str("{\"username\":\"adm\\u00efn\",\"password\":\"p\\\"w\\\\\"}", "adm\xc3\xafn", "p\"w\\",
		     "JSON escapes decoded");

	/* user:password rejects */
	check_einval_str("", "empty input");
	check_einval_str("\n", "only a newline");
	check_einval_str("\r\n", "only CRLF");
	check_einval_str("userpass", "no colon");
	check_einval_str("userpass\n", "no colon, with LF");
	check_einval_str(":pass", "empty user");
	check_einval_str("user:", "empty password");
	check_einval_str("user:\n", "empty password before LF");
	check_einval_str(":", "only a colon");
	check_einval_str("user:pa\tss", "tab in password");
	check_einval_str("us\x01r:pass", "control character in user");
	check_einval_str("user:pa\x1bss", "ESC in password");
	check_einval_str("user:pa\x7fss", "DEL in password");
	check_einval_str("user:pass\n\n", "two trailing newlines");
	check_einval_str("user:pa\nss", "newline inside");
	check_einval_str("user:pass\r\r\n", "CR CR LF");
	check_einval("user:pa\0ss", 10, "NUL byte inside");

	/* JSON rejects */
	check_einval_str("{\"username\":\"admin\"}", "JSON missing password");
	check_einval_str("{\"password\":\"pw\"}", "JSON missing username");
	check_einval_str("{\"username\":\"admin\",\"password\":42}", "JSON password a number");
	check_einval_str("{\"username\":null,\"password\":\"pw\"}", "JSON username null");
	check_einval_str("{\"username\":[\"admin\"],\"password\":\"pw\"}", "JSON username an array");
	check_einval_str("{\"username\":\"\",\"password\":\"pw\"}", "JSON empty username");
	check_einval_str("{\"username\":\"admin\",\"password\":\"\"}", "JSON empty password");
	check_einval_str("{\"username\":\"admin\",\"password\":\"a\",\"password\":\"b\"}", "JSON duplicate password");
	check_einval_str("{\"username\":\"a\",\"username\":\"b\",\"password\":\"pw\"}", "JSON duplicate username");
	check_einval_str("{\"username\":\"ad\\u0001min\",\"password\":\"pw\"}", "JSON control character in user");
	check_einval_str("{\"username\":\"admin\",\"password\":\"pw\"", "JSON truncated");
	check_einval_str("{\"username\":\"admin\",\"password\":\"pw\"} x", "JSON with trailing garbage");
	check_einval_str("{}", "JSON empty object");
	check_einval_str("{", "lone brace");
	check_einval_str("[\"admin\",\"pw\"]", "JSON array, not an object");
	check_einval_str("\"admin\"", "JSON string, not an object");
	check_einval_str("42", "JSON number, not an object");

	/* JSON can carry any password (it is saved as JSON too); only the user
	 * name must be printable. */
	check_ok_str("{\"username\":\"admin\",\"password\":\"p\\tw\\n\"}", "admin", "p\tw\n",
		     "JSON password with control characters");

	is_int(CRYPTO_secure_used(), 0, "every secret was freed");
	return done();
}
