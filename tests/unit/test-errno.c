/* Error mapping: libcurl results (with the socket errno behind them) and HTTP
 * statuses to the -errno a read returns (DESIGN.md §4). */
#include <curl/curl.h>
#include <errno.h>

#include "lib/http.h"
#include "providers/provider.h"
#include "tap.h"

static void check_curl(int code, long os_errno, int want, const char *what)
{
	is_int(http_curl_errno(code, os_errno), want, "curl %s (%d, os errno %ld) → %d", what, code, os_errno, want);
}

static void test_curl(void)
{
	check_curl(CURLE_OK, 0, 0, "OK");

	/* Connecting: the socket errno tells refused from unreachable. */
	check_curl(CURLE_COULDNT_CONNECT, ECONNREFUSED, -ECONNREFUSED, "connect refused");
	check_curl(CURLE_COULDNT_CONNECT, 0, -ECONNREFUSED, "connect failed, no os errno");
	check_curl(CURLE_COULDNT_CONNECT, EHOSTUNREACH, -EHOSTUNREACH, "connect: host unreachable");
	check_curl(CURLE_COULDNT_CONNECT, ENETUNREACH, -ENETUNREACH, "connect: network unreachable");
	check_curl(CURLE_COULDNT_CONNECT, ETIMEDOUT, -ETIMEDOUT, "connect: SYN timed out");

	/* Name resolution failures read as unreachable. */
	check_curl(CURLE_COULDNT_RESOLVE_HOST, 0, -EHOSTUNREACH, "resolve host");
	check_curl(CURLE_COULDNT_RESOLVE_PROXY, 0, -EHOSTUNREACH, "resolve proxy");

	check_curl(CURLE_OPERATION_TIMEDOUT, 0, -ETIMEDOUT, "operation timed out");
	check_curl(CURLE_OPERATION_TIMEDOUT, ETIMEDOUT, -ETIMEDOUT, "operation timed out, os errno set");

	/* TLS: the peer could not be verified, or no TLS session came up. */
	check_curl(CURLE_PEER_FAILED_VERIFICATION, 0, -EPROTO, "peer failed verification");
	check_curl(CURLE_SSL_CACERT_BADFILE, 0, -EPROTO, "bad CA file");
	check_curl(CURLE_SSL_ISSUER_ERROR, 0, -EPROTO, "issuer check failed");
	check_curl(CURLE_SSL_PINNEDPUBKEYNOTMATCH, 0, -EPROTO, "pinned key mismatch");
	check_curl(CURLE_SSL_CONNECT_ERROR, 0, -EPROTO, "TLS handshake failed");
	check_curl(CURLE_SSL_CERTPROBLEM, 0, -EPROTO, "client certificate problem");
	check_curl(CURLE_SSL_CIPHER, 0, -EPROTO, "cipher problem");
	check_curl(CURLE_USE_SSL_FAILED, 0, -EPROTO, "TLS required but unavailable");

	/* The connection broke after it was made. */
	check_curl(CURLE_RECV_ERROR, ECONNRESET, -EIO, "recv error (reset)");
	check_curl(CURLE_RECV_ERROR, 0, -EIO, "recv error");
	check_curl(CURLE_SEND_ERROR, EPIPE, -EIO, "send error");
	check_curl(CURLE_GOT_NOTHING, 0, -EIO, "empty reply");
	check_curl(CURLE_PARTIAL_FILE, 0, -EIO, "partial body");
	check_curl(CURLE_HTTP2_STREAM, 0, -EIO, "HTTP/2 stream error");

	/* The request itself. */
	check_curl(CURLE_URL_MALFORMAT, 0, -EINVAL, "malformed URL");
	check_curl(CURLE_UNSUPPORTED_PROTOCOL, 0, -EINVAL, "unsupported scheme");
	check_curl(CURLE_OUT_OF_MEMORY, 0, -ENOMEM, "out of memory");
	check_curl(CURLE_WRITE_ERROR, 0, -EFBIG, "write callback refused (body too big)");
	check_curl(CURLE_FILESIZE_EXCEEDED, 0, -EFBIG, "file size exceeded");

	/* An os errno does not leak through codes other than COULDNT_CONNECT. */
	check_curl(CURLE_RECV_ERROR, EHOSTUNREACH, -EIO, "recv error with EHOSTUNREACH");
	check_curl(CURLE_COULDNT_RESOLVE_HOST, ECONNREFUSED, -EHOSTUNREACH, "resolve with ECONNREFUSED");
	check_curl(CURLE_COULDNT_CONNECT, EPERM, -ECONNREFUSED, "connect with EPERM");
}

static void check_status(long status, int want)
{
	is_int(auth_http_status_errno(status), want, "HTTP %ld → %d", status, want);
}

static void test_status(void)
{
	check_status(200, 0);
	check_status(201, 0);
	check_status(202, 0);
	check_status(204, 0);
	check_status(299, 0);
	check_status(401, -EKEYREJECTED);
	check_status(403, -EKEYREJECTED);
	check_status(404, -ENOENT);
	check_status(410, -ENOENT);
	check_status(429, -EAGAIN);
	check_status(500, -EIO);
	check_status(502, -EIO);
	check_status(503, -EIO);
	check_status(504, -EIO);
	check_status(400, -EIO);
	check_status(405, -EIO);
	check_status(301, -EIO);
	check_status(100, -EIO);
	check_status(199, -EIO);
	check_status(300, -EIO);
	check_status(0, -EIO);
	check_status(-1, -EIO);
}

int main(void)
{
	test_curl();
	test_status();
	return done();
}
