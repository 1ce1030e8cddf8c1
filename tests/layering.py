#!/usr/bin/env python3
"""The layering of the sources (DESIGN.md §5), checked by folder: run it from
anywhere, or as `meson test layering`. Exit 1 with one line per violation.

Rules (a header path is taken relative to auth/):
- lib/ includes nothing of auth/ outside lib/.
- providers/ includes only providers/provider.h, providers/replies.h (its
  reply parsers, for the tests and fuzzers), lib/ and headers of its own
  folder (sts/); provider.h, the interface, may also include auth.h.
- fleet/ includes only fleet/, lib/, providers/provider.h (the session
  type) and, of the engine, only the header the engine publishes for it
  (engine/fleet-api.h: a target's fixed facts and the transitions of its
  session the fleet may ask for; not engine/target.h, the target's fields).
- engine/ includes engine/, lib/, providers/provider.h, fleet/fleet.h and
  auth.h: no provider's own header, no fleet internals.
- auth.h includes only lib/; fs/ includes only auth/auth.h of auth/.
- fs/ and the engine never name a provider, in code or comment, except the
  provider table (engine/providers.c).
- No cycle of calls between files anywhere under auth/ (by the functions each
  defines and calls), nor between fs/'s files.

`layering.py --planted` plants one violation of each rule in a copy of the
tree and checks that each is reported (the check's own test).
"""

import re
import shutil
import sys
import tempfile
from pathlib import Path

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function definition, kernel style: the head at the start of a line, the
# brace alone on the next.
DEFINITION = re.compile(r"^(static\b)?[A-Za-z][^\n;(=]*?\b(\w+)\([^;{]*?\)\n\{", re.M)

ENGINE_PUBLISHED_FOR_FLEET = "engine/fleet-api.h"
PROVIDER_TABLE = "engine/providers.c"


def resolve(auth, src, inc):
    """An include of src as a path relative to auth/ (None: outside auth/)."""
    for base in (src.parent, auth):
        p = (base / inc).resolve()
        if p.exists():
            try:
                return p.relative_to(auth).as_posix()
            except ValueError:
                return None
    return inc


def folder(rel):
    return rel.split("/")[0] if "/" in rel else ""


def allowed(src_rel, inc_rel):
    """Why the include of inc_rel by src_rel breaks a rule, or None."""
    src_dir, inc_dir = folder(src_rel), folder(inc_rel)
    if src_dir == "lib":
        return None if inc_dir == "lib" else "lib/ includes something above it"
    if src_dir == "providers":
        if inc_dir == "lib" or inc_rel in ("providers/provider.h", "providers/replies.h"):
            return None
        if src_rel == "providers/provider.h" and inc_rel == "auth.h":
            return None
        if Path(inc_rel).parent == Path(src_rel).parent and Path(src_rel).parent != Path("providers"):
            return None  # a provider's own folder (sts/)
        return "a provider includes more than providers/provider.h and lib/"
    if src_dir == "fleet":
        if inc_dir in ("fleet", "lib") or inc_rel in ("providers/provider.h", ENGINE_PUBLISHED_FOR_FLEET):
            return None
        return "fleet/ reaches the engine other than through " + ENGINE_PUBLISHED_FOR_FLEET
    if src_dir == "engine":
        if inc_dir in ("engine", "lib") or inc_rel in ("providers/provider.h", "fleet/fleet.h", "auth.h"):
            return None
        return "the engine includes a provider's or the fleet's internals"
    if src_rel == "auth.h":
        return None if inc_dir == "lib" else "auth.h includes more than lib/"
    return "a file outside the four folders of auth/"


def provider_names(auth):
    """Each provider's C name (x_provider) and directory name (.name)."""
    names = set()
    for src in (auth / "providers").rglob("*.c"):
        for c_name, body in re.findall(r"^const struct auth_provider (\w+)_provider = \{(.*?)^\};",
                                       src.read_text(), re.S | re.M):
            names.add(c_name)
            m = re.search(r'\.name = "([^"]+)"', body)
            if m:
                names.add(m.group(1))
    return names


def call_graph(files, root):
    """file → files whose (non-static) functions it calls."""
    texts = {f.relative_to(root).as_posix(): f.read_text() for f in files}
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


def check(repo):
    auth, fs = repo / "auth", repo / "fs"
    problems = []
    sources = sorted(auth.rglob("*.[ch]"))
    for src in sources:
        src_rel = src.relative_to(auth).as_posix()
        for inc in INCLUDE.findall(src.read_text()):
            inc_rel = resolve(auth, src, inc)
            why = allowed(src_rel, inc_rel) if inc_rel else None
            if why:
                problems.append(f"auth/{src_rel}: includes {inc_rel}: {why}")

    for src in sorted(fs.glob("*.[ch]")):
        for inc in INCLUDE.findall(src.read_text()):
            if "auth/" in inc and inc != "../auth/auth.h":
                problems.append(f"{src.relative_to(repo)}: includes {inc}: fs/ includes only auth/auth.h")

    names = provider_names(auth)
    word = re.compile(r"\b(%s)\b" % "|".join(sorted(map(re.escape, names))), re.I)
    engine = [p for p in sorted((auth / "engine").glob("*.[ch]")) if p.relative_to(auth).as_posix() != PROVIDER_TABLE]
    for src in sorted(fs.glob("*.[ch]")) + engine:
        for n, line in enumerate(src.read_text().splitlines(), 1):
            m = word.search(line)
            if m:
                problems.append(f"{src.relative_to(repo)}:{n}: names provider {m.group(1)}: {line.strip()}")

    for label, files, root in (("auth", sorted(auth.rglob("*.c")), auth), ("fs", sorted(fs.glob("*.c")), fs)):
        for cycle in cycles(call_graph(files, root)):
            problems.append(f"{label}: call cycle {' -> '.join(cycle)}")
    return problems, len(list((auth / "providers").rglob("*.c"))), names


# One planted violation per rule: (file, text appended, what the report says).
PLANTED = [
    ("auth/lib/http.c", '#include "engine/target.h"\n', "lib/ includes something above it"),
    ("auth/providers/aos.c", '#include "engine/target.h"\n', "a provider includes more than"),
    ("auth/providers/redfish.c", '#include "sts/sts.h"\n', "a provider includes more than"),
    ("auth/fleet/watch.c", '#include "engine/lifetime.h"\n', "fleet/ reaches the engine other than"),
    ("auth/fleet/flight.c", '#include "engine/target.h"\n', "fleet/ reaches the engine other than"),
    ("auth/engine/files.c", '#include "fleet/internal.h"\n', "the engine includes a provider's or the fleet's"),
    ("auth/engine/files.c", '#include "providers/sts/sts.h"\n', "the engine includes a provider's or the fleet's"),
    ("auth/engine/registry.c", '#include "providers/replies.h"\n', "the engine includes a provider's or the fleet's"),
    ("auth/auth.h", '#include "engine/target.h"\n', "auth.h includes more than lib/"),
    ("fs/ops.c", '#include "../auth/lib/log.h"\n', "fs/ includes only auth/auth.h"),
    ("fs/tree.c", "/* redfish */\n", "names provider redfish"),
    ("auth/engine/flight.c", "/* aos */\n", "names provider aos"),
    ("auth/engine/target.c", "void planted_cycle(void)\n{\n\tflight_refresh(NULL);\n}\n", "auth: call cycle"),
    ("auth/providers/sts/request.c", "void planted_cycle(void)\n{\n\tsts_role_login(NULL, NULL, NULL);\n}\n",
     "auth: call cycle"),
]


def planted(repo):
    failures = 0
    for rel, text, expect in PLANTED:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp)
            shutil.copytree(repo / "auth", copy / "auth")
            shutil.copytree(repo / "fs", copy / "fs")
            with open(copy / rel, "a") as f:
                f.write(text)
            problems, _, _ = check(copy)
            hit = [p for p in problems if expect in p]
            ok = bool(hit)
            failures += not ok
            print(f"{'ok' if ok else 'not ok'} - {rel} + {text.strip()!r}: {hit[0] if hit else 'not reported'}")
    print(f"planted: {len(PLANTED) - failures} of {len(PLANTED)} violations reported")
    return 1 if failures else 0


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repo = Path(args[0]).resolve() if args else Path(__file__).resolve().parents[1]
    if "--planted" in sys.argv:
        return planted(repo)
    problems, n_providers, names = check(repo)
    for p in problems:
        print(p)
    print(f"layering: {n_providers} provider sources, providers {sorted(names)}: "
          f"{'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
