"""A hostile server: AOS, Redfish and STS at once, answering logins with the
payloads of issue 11 (a compromised, spoofed or buggy server).

Set .payload to one of PAYLOADS before the daemon logs in. Every payload
applies to the login reply of the protocol asked (POST /api/user/login,
POST to the Redfish Sessions collection, POST / for STS GetSessionToken);
everything else answers as a well-behaved server would. .marker is the file
the shell payloads try to create; .capture is the URL redirects point to.

    shell        quotes and $(touch marker) in one STS field (.field)
    token-crlf   AOS token with CR LF and a forged header after it
    token-cr     a bare CR and a forged header (Redfish X-Auth-Token)
    token-nul    a NUL in the token
    token-space  a space in the token
    token-quote  a single quote in the token
    token-dquote a double quote in the token
    location-host     Redfish Location on another host (.capture)
    location-systems  Redfish Location /redfish/v1/Systems/System.Embedded.1
    location-query    Redfish Location /redfish/v1/a b?c#d
    redirect-301 .. redirect-308   to .capture, same path
    big          a 100 MB body (Content-Length says so, and it keeps coming)
    endless      a chunked body that never ends
    deep         JSON (AOS, Redfish) or XML (STS) nested 100,000 deep
    laughs       billion laughs (XML entities)
    xxe          an external entity reading file:///etc/passwd
"""

import json
import time

from .common import MockServer, Response, json_response

SESSIONS = "/redfish/v1/SessionService/Sessions"
STS_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
PAYLOADS = ("shell", "token-crlf", "token-cr", "token-nul", "token-space", "token-quote",
            "token-dquote", "location-host", "location-systems", "location-query",
            "redirect-301", "redirect-302", "redirect-307", "redirect-308",
            "big", "endless", "deep", "laughs", "xxe")
BIG = 100 * 2**20
DEPTH = 100_000

GOOD_STS = {"AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
            "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "SessionToken": "IQoJb3JpZ2luX2VjEE8aCXVzLWVhc3QtMSJHMEUCIQ==",
            "Expiration": "2099-01-01T00:00:00Z"}

TOKENS = {"token-crlf": "abc\r\nX-Injected: yes", "token-cr": "abc\rX-Injected: yes",
          "token-nul": "abc\0def", "token-space": "abc def", "token-quote": "abc'def",
          "token-dquote": 'abc"def'}


def laughs_xml():
    ents = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)]
    return (f'<?xml version="1.0"?><!DOCTYPE lolz [{"".join(ents)}]>'
            f'<GetSessionTokenResponse><AccessKeyId>&lol9;</AccessKeyId></GetSessionTokenResponse>')


def sts_xml(fields):
    creds = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return ('<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<GetSessionTokenResult><Credentials>{creds}</Credentials></GetSessionTokenResult>"
            "<ResponseMetadata><RequestId>hostile</RequestId></ResponseMetadata>"
            "</GetSessionTokenResponse>")


class HostileMock(MockServer):
    def __init__(self, ca=None, payload=None, marker="/tmp/sessionfs-pwned", capture="http://127.0.0.1:9"):
        super().__init__(ca)
        self.payload = payload
        self.field = "AccessKeyId"  # for "shell"
        self.marker = str(marker)
        self.capture = capture
        self.bytes_sent = 0  # of the last big or endless body, before the client hung up
        self.route("POST", "/api/user/login", lambda req: self._login(req, "aos"))
        self.route("GET", "/api/user", lambda req: json_response(200, {"username": "admin"}))
        self.route("POST", "/api/user/logout", lambda req: json_response(200, {}))
        self.route("GET", "/redfish/v1/?", lambda req: json_response(
            200, {"@odata.id": "/redfish/v1/", "Links": {"Sessions": {"@odata.id": SESSIONS}}}))
        self.route("GET", "/redfish/v1/SessionService", lambda req: json_response(200, {"SessionTimeout": 1800}))
        self.route("POST", SESSIONS, lambda req: self._login(req, "redfish"))
        self.route("GET", SESSIONS + "/.*", lambda req: json_response(200, {"Id": "1"}))
        self.route("DELETE", "/.*", lambda req: Response(204))
        self.route("POST", "/", lambda req: self._login(req, "sts"))

    # -- the payloads, per protocol

    def _login(self, req, proto):
        p = self.payload
        if p and p.startswith("redirect-"):
            return Response(int(p[-3:]), b"", {"Location": self.capture + req.path})
        if p == "deep":
            body = ("[" * DEPTH + "]" * DEPTH) if proto != "sts" else ("<a>" * DEPTH + "</a>" * DEPTH)
            return Response(200 if proto != "redfish" else 201, body.encode(),
                            self._redfish_headers(proto, "tok", SESSIONS + "/1"))
        if proto == "aos":
            return self._aos(p)
        if proto == "redfish":
            return self._redfish(p)
        return self._sts(p)

    @staticmethod
    def _redfish_headers(proto, token, location):
        if proto != "redfish":
            return {"Content-Type": "application/json"}
        return {"Content-Type": "application/json", "X-Auth-Token": token, "Location": location}

    def _aos(self, p):
        if p in TOKENS:
            return Response(200, json.dumps({"token": TOKENS[p], "id": "1"}).encode(),
                            {"Content-Type": "application/json"})
        if p == "laughs":
            return Response(200, laughs_xml().encode(), {"Content-Type": "application/json"})
        if p == "xxe":
            return Response(200, self._xxe().encode(), {"Content-Type": "application/json"})
        return json_response(200, {"token": "good-token", "id": "1"})

    def _redfish(self, p):
        token, location = "good-token", SESSIONS + "/1"
        if p in TOKENS:
            token = TOKENS[p]
        elif p == "location-host":
            location = self.capture + SESSIONS + "/1"
        elif p == "location-systems":
            location = "/redfish/v1/Systems/System.Embedded.1"
        elif p == "location-query":
            location = "/redfish/v1/a b?c#d"
        body = {"@odata.id": location, "Id": "1", "UserName": "root"}
        return Response(201, json.dumps(body).encode(), self._redfish_headers("redfish", token, location))

    def _sts(self, p):
        fields = dict(GOOD_STS)
        if p == "shell":
            fields[self.field] = fields[self.field] + f"'$(touch {self.marker})'"
        elif p in TOKENS:
            fields["SessionToken"] = TOKENS[p].replace("\0", "&#0;").replace("\r", "&#13;").replace("\n", "&#10;")
        elif p == "laughs":
            return Response(200, laughs_xml().encode(), {"Content-Type": "text/xml"})
        elif p == "xxe":
            return Response(200, self._xxe().encode(), {"Content-Type": "text/xml"})
        return Response(200, sts_xml(fields).encode(), {"Content-Type": "text/xml"})

    @staticmethod
    def _xxe():
        fields = dict(GOOD_STS, SecretAccessKey="&xxe;")
        return ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                + sts_xml(fields))

    # -- bodies that do not end: written here, not by the base class

    def _serve(self, handler, req):
        if self.payload not in ("big", "endless") or req.method not in ("POST",):
            return super()._serve(handler, req)
        with self._lock:
            self._requests.append(req)
        stopped = handler.server.stopped
        handler.close_connection = True
        status = "201 Created" if req.path == SESSIONS else "200 OK"
        head = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close",
                "X-Auth-Token: good-token", f"Location: {SESSIONS}/1"]
        head.append(f"Content-Length: {BIG}" if self.payload == "big" else "Transfer-Encoding: chunked")
        block = b"[" * 65536
        sent = 0
        try:
            handler.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode())
            while not stopped.is_set() and (self.payload == "endless" or sent < BIG):
                if self.payload == "endless":
                    handler.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
                else:
                    handler.wfile.write(block)
                sent += len(block)
        except OSError:
            pass  # the client hung up: what the daemon must do
        self.bytes_sent = sent
