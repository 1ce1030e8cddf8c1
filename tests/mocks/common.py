"""Shared machinery for the mock API servers of the integration tests.

A mock is a MockServer subclass that registers routes. The base class gives
it TLS with a CA made at test time, a record of every request, fault
injection, and a way to go down and come back on the same port, so every
provider's tests (AOS, Redfish, STS) exercise the daemon the same way.
"""

import json
import logging
import re
import secrets
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("mocks")

# Values of MockServer.fail.
FAULTS = (None, "500", "hang", "malformed", "reset", "trickle")


# --- certificates -----------------------------------------------------------

@dataclass(frozen=True)
class CA:
    """A test CA and the server certificate it signed for 127.0.0.1."""
    ca: Path    # what clients trust (ca_path in the daemon's config)
    cert: Path  # server certificate: SAN IP:127.0.0.1, DNS:localhost
    key: Path   # server private key


# Our own minimal config, so the result does not depend on the system's
# openssl.cnf (which adds different default extensions per distribution).
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(dirpath, name="sessionfs test CA"):
    """Create a fresh CA and a server certificate for 127.0.0.1 in dirpath.

    Every call makes new keys, so a second call (another dir) gives an
    unrelated CA: trusting one must not validate the other's server.
    """
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    (d / "openssl.cnf").write_text(_OPENSSL_CNF)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-config", "openssl.cnf", "-x509", "-new", *ec,
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "7",
             "-subj", f"/CN={name}", "-extensions", "ca_ext", cwd=d)
    _openssl("req", "-config", "openssl.cnf", "-new", *ec,
             "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-set_serial", "0x" + secrets.token_hex(8),
             "-days", "7", "-extfile", "openssl.cnf",
             "-extensions", "server_ext", "-out", "server.pem", cwd=d)
    return CA(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key")


def client_context(ca):
    """An SSL context that trusts only this test CA (hostname checked)."""
    return ssl.create_default_context(cafile=str(ca.ca))


# --- requests and responses -------------------------------------------------

@dataclass
class Request:
    """One request as the mock received it."""
    method: str
    path: str       # without the query string
    query: str
    headers: dict   # names lower-cased: HTTP header names are case-insensitive
    body: bytes
    time: float     # time.time() once the request was read
    client: tuple   # (host, port): a new port means a new TCP connection

    def json(self):
        return json.loads(self.body)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def json_response(status, obj, headers=None):
    body = json.dumps(obj).encode()
    return Response(status, body, {"Content-Type": "application/json",
                                   **(headers or {})})


def json_body(req):
    """The request body as a JSON object, or None if it is not one."""
    try:
        obj = json.loads(req.body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


@dataclass
class Reply:
    """What MockServer.call() got back."""
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def wait_until(predicate, timeout, interval=0.05):
    """Poll predicate until it is true; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- the server -------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients keep connections alive, as real servers allow;
    # every response therefore carries a Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "sessionfs-mock"

    def _dispatch(self):
        path, _, query = self.path.partition("?")
        req = Request(method=self.command, path=path, query=query,
                      headers={k.lower(): v for k, v in self.headers.items()},
                      body=self._read_body(), time=time.time(),
                      client=self.client_address)
        self.server.mock._serve(self, req)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]  # + CRLF
                if size == 0:
                    # Trailers end with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(chunk)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, fmt, *args):
        log.debug("%s: " + fmt, self.server.mock.url, *args)


class _HTTPServer(ThreadingHTTPServer):
    # Do not wait for hanging or trickling handlers on close; stop() ends
    # them by closing their connections.
    block_on_close = False

    def __init__(self, mock, port):
        self.mock = mock
        self.stopped = threading.Event()
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__((mock.host, port), _Handler)

    def finish_request(self, sock, client_address):
        # As servers in front of real APIs do (nginx's tcp_nodelay): without
        # it, a TLS 1.3 response waits behind the session tickets sent
        # before it until the client's delayed ACK, 40 ms more per login.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # TLS handshake here, in the connection's thread, so a client that
        # never completes it cannot block the accept loop.
        if self.mock.ssl_context is not None:
            sock.settimeout(10)
            try:
                sock = self.mock.ssl_context.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.mock._count("tls_failures")
                log.debug("%s: TLS handshake failed: %s", self.mock.url, e)
                sock.close()
                return
            sock.settimeout(None)
        self.mock._count("connections")
        self.mock._enter("open_connections", "max_connections")
        with self.conns_lock:
            self.conns.add(sock)
        try:
            if not self.stopped.is_set():  # accepted while stop() ran
                super().finish_request(sock, client_address)
        finally:
            with self.conns_lock:
                self.conns.discard(sock)
            sock.close()
            self.mock._leave("open_connections")

    def handle_error(self, request, client_address):
        # Broken connections are expected (faults, stop()); keep them quiet.
        log.debug("%s: connection error", self.mock.url, exc_info=True)

    def close_all(self):
        self.stopped.set()
        with self.conns_lock:
            conns = list(self.conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class MockServer:
    """An HTTP(S) server on 127.0.0.1 that records requests and can misbehave.

    Subclasses register handlers with route(); a handler gets the Request
    (and the pattern's groups) and returns a Response.

    Attributes a test may set at any time:
      fail    None, or one of FAULTS, applied to every request:
              "500"       answer 500 with a JSON error body
              "hang"      read the request, then wait until fail changes or the
                          server stops (then answer normally / close)
              "malformed" 200 with a truncated, non-JSON body
              "reset"     send the headers and half the body, then a TCP reset
              "trickle"   send the normal response one byte per
                          trickle_interval seconds
      delay   seconds to wait before answering each request (e.g. to widen a
              race window for single-flight tests)
      slow    {(method or None, path regex): seconds}: a server that answers
              slowly (neither hanging nor fast) on some endpoints only, e.g.
              {("POST", LOGIN): 1.0}; added to delay. See set_slow().

    Read-only figures for tests and benchmarks:
      connections / max_connections  TCP connections accepted in all / the
              most open at once; in_flight / max_in_flight: requests being
              answered now / the most at once (reset_peaks() starts afresh)
    """

    def __init__(self, ca=None, host="127.0.0.1"):
        self.ca = ca
        self.host = host
        self.port = 0
        self.fail = None
        self.delay = 0.0
        self.slow = {}
        self.trickle_interval = 1.0
        self.ssl_context = None
        if ca is not None:
            self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_context.load_cert_chain(str(ca.cert), str(ca.key))
        self.connections = 0   # TCP connections accepted (after TLS)
        self.tls_failures = 0  # TLS handshakes that failed (e.g. wrong CA)
        self.open_connections = 0
        self.max_connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._routes = []
        self._requests = []
        self._lock = threading.Lock()
        self._httpd = None

    @property
    def fail(self):
        return self._fail

    @fail.setter
    def fail(self, fault):
        # A typo would otherwise leave the server healthy and the test vacuous.
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        self._fail = fault

    # -- lifecycle

    @property
    def scheme(self):
        return "https" if self.ssl_context else "http"

    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def running(self):
        return self._httpd is not None

    def start(self):
        """Listen (again): the first time on an ephemeral port, then on the
        same port, so a stop()/start() pair looks like a server restart."""
        if self._httpd is None:
            self._httpd = _HTTPServer(self, self.port)
            self.port = self._httpd.server_address[1]
            threading.Thread(target=self._httpd.serve_forever,
                             kwargs={"poll_interval": 0.05},
                             name=f"mock:{self.port}", daemon=True).start()
        return self

    def stop(self):
        """Stop listening and drop open connections: the server is down, a
        connection to the port is refused. Recorded state is kept."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_all()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- routes and the request record

    def route(self, method, pattern, handler):
        """Serve method + path (a regex matched against the whole path)."""
        self._routes.append((method, re.compile(pattern), handler))

    @property
    def requests(self):
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, method=None, path=None):
        """How many requests matched method and path (None = any)."""
        return sum(1 for r in self.requests
                   if method in (None, r.method) and path in (None, r.path))

    def clear(self):
        with self._lock:
            self._requests.clear()

    def _count(self, counter):
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _enter(self, gauge, peak):
        with self._lock:
            value = getattr(self, gauge) + 1
            setattr(self, gauge, value)
            setattr(self, peak, max(getattr(self, peak), value))

    def _leave(self, gauge):
        with self._lock:
            setattr(self, gauge, getattr(self, gauge) - 1)

    def reset_peaks(self):
        """max_connections and max_in_flight from now on (start at the
        current values)."""
        with self._lock:
            self.max_connections = self.open_connections
            self.max_in_flight = self.in_flight

    def set_slow(self, seconds, method=None, path=".*"):
        """Answer requests matching method (None: any) and path (a regex
        matched against the whole path) after `seconds`; 0 removes the rule."""
        key = (method, path)
        if seconds:
            self.slow = {**self.slow, key: seconds}
        else:
            self.slow = {k: v for k, v in self.slow.items() if k != key}

    def _slowness(self, req):
        return self.delay + sum(
            seconds for (method, path), seconds in self.slow.items()
            if method in (None, req.method) and re.fullmatch(path, req.path))

    def handle(self, req):
        """Route a request to a Response (subclasses may override)."""
        path_known = False
        for method, pattern, handler in self._routes:
            m = pattern.fullmatch(req.path)
            if m:
                path_known = True
                if method == req.method:
                    return handler(req, *m.groups())
        if path_known:
            return json_response(405, {"errors": "Method not allowed"})
        return json_response(404, {"errors": "Not found"})

    # -- answering, with faults

    def _serve(self, handler, req):
        with self._lock:
            self._requests.append(req)
        self._enter("in_flight", "max_in_flight")
        try:
            self._answer(handler, req)
        finally:
            self._leave("in_flight")

    def _answer(self, handler, req):
        stopped = handler.server.stopped
        delay = self._slowness(req)
        if delay and stopped.wait(delay):
            handler.close_connection = True
            return
        fault = self.fail
        if fault == "hang":
            while self.fail == "hang" and not stopped.wait(0.05):
                pass
            if stopped.is_set():
                handler.close_connection = True
                return
            fault = self.fail
        if fault == "500":
            resp = json_response(500, {"errors": "Internal server error"})
        elif fault == "malformed":
            resp = Response(200, b'{"token": "eyJhbGciOiJIUzI1NiIsInR5cCI',
                            {"Content-Type": "application/json"})
        else:
            resp = self.handle(req)
        data = self._serialize(handler, req, resp)
        if fault == "reset":
            self._reset(handler, data)
        elif fault == "trickle":
            for i in range(len(data)):
                handler.wfile.write(data[i:i + 1])
                if stopped.wait(self.trickle_interval):
                    handler.close_connection = True
                    return
        else:
            handler.wfile.write(data)

    @staticmethod
    def _serialize(handler, req, resp):
        body = b"" if req.method == "HEAD" else resp.body
        lines = [f"HTTP/1.1 {resp.status} {handler.responses.get(resp.status, ('',))[0]}",
                 f"Server: {handler.server_version}",
                 f"Date: {handler.date_time_string()}",
                 f"Content-Length: {len(resp.body)}"]
        lines += [f"{k}: {v}" for k, v in resp.headers.items()]
        if handler.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    @staticmethod
    def _reset(handler, data):
        head, _, body = data.partition(b"\r\n\r\n")
        handler.wfile.write(head + b"\r\n\r\n" + body[:len(body) // 2])
        # SO_LINGER 0: close() sends RST instead of FIN. The fd really closes
        # when the handler drops its file objects, before any FIN is sent.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True

    # -- a client, for tests that act like the daemon's own users

    def call(self, method, path, body=None, headers=None, timeout=10):
        """Send one request to this mock (over TLS trusting its CA).

        body: bytes, or any other value to send as JSON. The request is
        recorded like any other.
        """
        headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=body,
                                     headers=headers, method=method)
        # No proxies from the environment: the mock is on loopback.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=client_context(self.ca) if self.ca else None))
        try:
            with opener.open(req, timeout=timeout) as r:
                return Reply(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            with e:
                return Reply(e.code, dict(e.headers), e.read())
