"""Page-cache reads of a token that changes all the time (issue 22 item 3).

A writer resumes a new session (session.json) as fast as the daemon takes
them, for SECONDS, while readers in processes of their own read the token:
plain open+read (through the page cache where the daemon allows it) and
O_DIRECT. Each read is checked against the tokens written: it must be
exactly one of them ("torn" otherwise: cut, mixed, or padded with zeros), and
not older than the last one whose write had returned before its open began
("stale"). With tokens of one length, sendfile() readers race too (FUSE
splices even a direct-I/O file through the page cache); with lengths that
vary they don't: a splice is cut at the size the kernel holds, which can
lag a change of length, page cache or not (open_reply() in fs/ops.c). A
hung read fails the test: the readers are killed, and teardown aborts the
mount if need be.
"""

import json
import multiprocessing
import os
import time

import pytest

from tests.integration.harness import aos_section

TOKEN = "aos/lab/token"
SESSION = "aos/lab/session.json"
SECONDS = 10  # of changes and reads

pytestmark = pytest.mark.concurrency


def read_plain(path, flags=0, size=65536):
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        data = os.read(fd, size)
        while more := os.read(fd, size):
            data += more
    finally:
        os.close(fd)
    return data


def read_sendfile(path):
    fd = os.open(path, os.O_RDONLY)
    out = os.memfd_create("token")
    try:
        while os.sendfile(out, fd, None, 65536) > 0:
            pass
        os.lseek(out, 0, os.SEEK_SET)
        return os.read(out, 65536)
    finally:
        os.close(fd)
        os.close(out)


def reader(kind, path, written, stop, results):
    """Reads until stop; sends (counts of distinct contents by the newest
    write done before their open, as {(content, done): n})."""
    seen = {}
    while not stop.is_set():
        done = written.value
        if kind == "direct":
            data = read_plain(path, os.O_DIRECT)
        elif kind == "sendfile":
            data = read_sendfile(path)
        elif kind == "pieces":
            data = read_plain(path, size=64)  # as a shell's `read` or a small buffer does
        else:
            data = read_plain(path)
        seen[(data, done)] = seen.get((data, done), 0) + 1
    results.put((kind, seen))


def race(d, mock, pads, readers):
    """Writes tokens (cycling through pads, which set their lengths) for
    SECONDS while the readers read; returns (reads by kind, stale, torn,
    tokens written)."""
    ctx = multiprocessing.get_context("fork")
    written, stop, results = ctx.Value("l", 0, lock=False), ctx.Event(), ctx.Queue()
    contents = {d.read(TOKEN).encode(): 0}  # the login's token: write 0
    procs = [ctx.Process(target=reader, args=(kind, d.path(TOKEN), written, stop, results), daemon=True)
             for kind, n in readers for _ in range(n)]
    for p in procs:
        p.start()
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            token = mock.issue_token(pad=pads[len(contents) % len(pads)])
            d.write(SESSION, json.dumps({"server": "127.0.0.1", "port": mock.port, "token": token}))
            contents[token.encode()] = len(contents)  # the file is the token alone
            written.value = len(contents) - 1
        stop.set()
        gathered = [results.get(timeout=30) for _ in procs]
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    reads, stale, torn = {}, [], []
    for kind, seen in gathered:
        for (data, done), n in seen.items():
            reads[kind] = reads.get(kind, 0) + n
            if data not in contents:
                torn.append((kind, n, data[:16], len(data)))
            elif contents[data] < done:
                stale.append((kind, n, contents[data], done))
    return reads, stale, torn, len(contents) - 1


def tally(bad):
    counts = {}
    for kind, n, *_ in bad:
        counts[kind] = counts.get(kind, 0) + n
    return counts


ONE_LENGTH = ([""], (("plain", 3), ("direct", 1), ("sendfile", 1)), "true")
LENGTHS_VARY = (["", "x" * 7, "y" * 40], (("plain", 3), ("direct", 1)), "true")
# Readers of a few bytes at a time read the page cache between two of the
# kernel's invalidations: torn with page_cache = true (README), never by
# default, when every open reads the rendering it was given.
IN_PIECES = ([""], (("pieces", 3), ("plain", 1)), "false")


@pytest.mark.parametrize("pads, readers, page_cache", [ONE_LENGTH, LENGTHS_VARY, IN_PIECES],
                         ids=["one length", "lengths vary", "in pieces, default"])
def test_no_stale_or_torn_read(aos_mock, make_daemon, pads, readers, page_cache):
    d = make_daemon(aos_section(aos_mock, "lab"), settings={"page_cache": page_cache})
    reads, stale, torn, changes = race(d, aos_mock, pads, readers)
    print(f"{changes} tokens written; reads {reads}; stale {tally(stale)}, torn {tally(torn)}")
    assert changes >= 100, "too few changes to race anything"  # about 500 here; fewer under TSan
    assert all(reads.get(kind, 0) > 100 for kind, _ in readers), reads
    assert not torn, f"torn reads (kind, count, start, length): {torn[:5]}"
    assert not stale, f"stale reads (kind, count, token, newest written before the open): {stale[:5]}"
