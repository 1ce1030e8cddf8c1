#!/usr/bin/env python3
"""The layering of the sources (DESIGN.md §5), checked: run it from anywhere,
or as `meson test layering`. Exit 1 with one line per violation.

- A provider's sources (every auth/*.c that is not a core module) include no
  core header but provider.h: besides it only the shared libraries log.h,
  util.h and validate.h, and headers of their own (sts.h, awsfiles.h).
- fs/ includes only auth/auth.h, auth/log.h and auth/util.h of auth/, and
  never names a provider, in code or comment; nor do the core's registry,
  session engine and files (core.c, session.c, files.c).
- The core modules call each other without cycles (by the functions each
  defines and calls), and so do fs/'s files.
"""

import re
import sys
from pathlib import Path

# The tree to check: the one this file is in, or the one given.
REPO = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
AUTH = REPO / "auth"
FS = REPO / "fs"

# The core: the auth core and the libraries it offers. Every other auth/*.c
# is a provider's.
CORE = {"access", "auth", "config", "core", "credentials", "etcd", "files", "fleet", "fleet-internal",
        "fleetcrypt", "fleetreject", "fleetwatch", "hosts", "http", "jwt", "log", "metrics", "provider", "providers", "secret",
        "session", "sessions", "store", "target", "util", "validate"}
PROVIDER_MAY_INCLUDE = {"provider.h", "log.h", "util.h", "validate.h"}
FS_MAY_INCLUDE = {"auth.h", "log.h", "util.h"}
NO_PROVIDER_NAMES = [AUTH / "core.c", AUTH / "session.c", AUTH / "files.c"]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    return [Path(h).name for h in INCLUDE.findall(path.read_text())]


def provider_names():
    """Each provider's C name (x_provider) and directory name (.name)."""
    names = set()
    for src in AUTH.glob("*.c"):
        for c_name, body in re.findall(r"^const struct auth_provider (\w+)_provider = \{(.*?)^\};",
                                       src.read_text(), re.S | re.M):
            names.add(c_name)
            m = re.search(r'\.name = "([^"]+)"', body)
            if m:
                names.add(m.group(1))
    return names


# A function definition, kernel style: the head at the start of a line, the
# brace alone on the next.
DEFINITION = re.compile(r"^(static\b)?[A-Za-z][^\n;(=]*?\b(\w+)\([^;{]*?\)\n\{", re.M)


def call_graph(files):
    """module → modules whose (non-static) functions it calls."""
    texts = {f.stem: f.read_text() for f in files}
    owner = {}
    for mod, text in texts.items():
        for static, fn in DEFINITION.findall(text):
            if not static:
                owner[fn] = mod
    graph = {}
    for mod, text in texts.items():
        called = set(re.findall(r"\b(\w+)\(", text))
        graph[mod] = {owner[fn] for fn in called if fn in owner and owner[fn] != mod}
    return graph


def cycles(graph):
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def main():
    problems = []
    own = {p.name for p in AUTH.glob("*.h") if p.stem not in CORE}
    providers = [p for p in sorted(AUTH.glob("*.c")) if p.stem not in CORE]
    for src in providers:
        for h in includes(src):
            if h not in PROVIDER_MAY_INCLUDE and h not in own:
                problems.append(f"{src.relative_to(REPO)}: a provider includes core header {h}")
    for h in sorted(own):
        for inc in includes(AUTH / h):
            if inc not in PROVIDER_MAY_INCLUDE and inc not in own:
                problems.append(f"auth/{h}: a provider's header includes core header {inc}")

    names = provider_names()
    word = re.compile(r"\b(%s)\b" % "|".join(sorted(map(re.escape, names))), re.I)
    for src in sorted(FS.glob("*.[ch]")):
        for inc in INCLUDE.findall(src.read_text()):
            if inc.startswith("../auth/") and Path(inc).name not in FS_MAY_INCLUDE:
                problems.append(f"{src.relative_to(REPO)}: fs/ includes {inc}")
    for src in sorted(FS.glob("*.[ch]")) + NO_PROVIDER_NAMES:
        for n, line in enumerate(src.read_text().splitlines(), 1):
            m = word.search(line)
            if m:
                problems.append(f"{src.relative_to(REPO)}:{n}: names provider {m.group(1)}: {line.strip()}")

    core_files = [AUTH / f"{m}.c" for m in sorted(CORE) if (AUTH / f"{m}.c").exists()]
    for label, files in (("auth core", core_files), ("fs", sorted(FS.glob("*.c")))):
        for cycle in cycles(call_graph(files)):
            problems.append(f"{label}: call cycle {' -> '.join(cycle)}")

    for p in problems:
        print(p)
    print(f"layering: {len(providers)} provider sources, providers {sorted(names)}: "
          f"{'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
