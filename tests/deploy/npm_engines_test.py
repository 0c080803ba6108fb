#!/usr/bin/python3
"""Every npm package the project pins must run on Debian 12's own Node.

A bare Debian 12 that follows the README's quick start gets Debian's
`nodejs` (18.x); machines with a newer Node from elsewhere hide a package
that needs more (playwright-core 1.62+ requires Node 20 and exits at
require time). This reads every package-lock.json under the source tree and
fails for each package whose `engines.node` range excludes that Node, and
for each package.json that has no package-lock.json beside it (an unpinned
package cannot be checked).

Usage: npm_engines_test.py SOURCE_DIR [NODE_VERSION]
NODE_VERSION defaults to Debian 12's nodejs (18.20.4+dfsg-1~deb12u3).

The range grammar is npm's (node-semver): `||`-separated sets of
comparators, x-ranges, `~`, `^` and hyphen ranges. Anything this parser does
not understand is a failure, never a pass.
"""

import json
import os
import re
import sys

DEBIAN_12_NODE = "18.20.4"

# The parsed triple of a version or partial version; None stands for x/*.
_PARTIAL = re.compile(
    r"^v?(\*|x|X|\d+)(?:\.(\*|x|X|\d+)(?:\.(\*|x|X|\d+)"
    r"(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?)?)?$")
_COMPARATOR = re.compile(r"^(<=|>=|<|>|=|~>|~|\^)?\s*(.*)$")


class RangeError(ValueError):
    pass


def _partial(text):
    m = _PARTIAL.match(text)
    if not m:
        raise RangeError(f"not a version: {text!r}")
    parts = [None if p in (None, "*", "x", "X") else int(p) for p in m.group(1, 2, 3)]
    # A wildcard ends the version: 1.x.3 means 1.x.
    for i in range(3):
        if parts[i] is None:
            parts[i + 1:] = [None] * (2 - i)
            break
    return parts, m.group(4)


def _key(parts, pre):
    # A prerelease sorts below its release; within prereleases, by text
    # (enough for the ranges engines fields use, like >=18.0.0-0).
    return (parts[0], parts[1], parts[2], 0 if pre else 1, pre or "")


def _bump(parts, index):
    """The smallest version above every version matching parts[:index+1]."""
    out = list(parts[: index + 1]) + [0] * (2 - index)
    out[index] += 1
    return out


def _desugar(op, text):
    """(op, key) pairs, all of which a version must satisfy; None: nothing can."""
    if op == "~>":
        op = "~"
    parts, pre = _partial(text)
    known = sum(p is not None for p in parts)
    lo = [p if p is not None else 0 for p in parts]
    if op in ("~", "^"):
        if known == 0:
            return []
        if op == "~":
            upper = _bump(parts, 1 if known >= 2 else 0)
        else:
            first = next((i for i in range(known) if parts[i] != 0), known - 1)
            upper = _bump(parts, first)
        return [(">=", _key(lo, pre)), ("<", _key(upper, "0"))]
    if known == 0:
        return None if op in ("<", ">") else []
    if known == 3:
        return [(op or "=", _key(parts, pre))]
    # A partial version: the x-range it names.
    upper = _bump(parts, known - 1)
    if op in ("", "="):
        return [(">=", _key(lo, None)), ("<", _key(upper, "0"))]
    if op == ">":
        return [(">=", _key(upper, None))]
    if op == ">=":
        return [(">=", _key(lo, None))]
    if op == "<":
        return [("<", _key(lo, "0"))]
    return [("<", _key(upper, "0"))]  # <=


def _comparator_set(text):
    text = text.strip()
    hyphen = re.match(r"^(\S+)\s+-\s+(\S+)$", text)
    if hyphen:
        low = _desugar(">=", hyphen.group(1))
        high_parts, _ = _partial(hyphen.group(2))
        high = _desugar("<=", hyphen.group(2)) if None in high_parts else [
            ("<=", _key(high_parts, None))]
        return low + high
    # npm allows a space between an operator and its version (">= 10.*").
    text = re.sub(r"(<=|>=|<|>|=|~>|~|\^)\s+", r"\1", text)
    out = []
    for token in text.split():
        m = _COMPARATOR.match(token)
        part = _desugar(m.group(1) or "", m.group(2))
        if part is None:
            return None
        out += part
    return out


def satisfies(version, spec):
    """Whether `version` (x.y.z) is in the npm range `spec`."""
    parts, pre = _partial(version)
    if None in parts:
        raise RangeError(f"not a full version: {version!r}")
    v = _key(parts, pre)
    checks = {
        "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
        "=": lambda a, b: a == b,
    }
    for alternative in spec.split("||"):
        comparators = _comparator_set(alternative)
        if comparators is not None and all(
                checks[op](v, bound) for op, bound in comparators):
            return True
    return False


def self_test():
    """The parser on ranges seen in real lock files, both ways."""
    cases = [
        (">=18", True), (">=20", False), (">=12.10.0", True), (">= 6", True),
        ("6.* || 8.* || >= 10.*", True), ("6.* || 8.*", False),
        ("^20.17.0 || >=22.9.0", False), ("^18.17.0 || >=20.5.0", True),
        ("^14.17.0 || ^16.13.0 || >=18.0.0", True), ("*", True), ("", True),
        ("18.x", True), ("~18.20.0", True), ("~18.21", False), ("<19", True),
        ("<=18", True), ("<18", False), (">18", False), ("16 - 18", True),
        ("16 - 18.19", False), ("^0.10.0", False), ("=18.20.4", True),
        (">=18.0.0-0 <19.0.0", True), (">=18.20.5", False),
    ]
    for spec, expected in cases:
        got = satisfies("18.20.4", spec)
        if got != expected:
            raise AssertionError(f"self-test: 18.20.4 in {spec!r} gave {got}")


def lock_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "node_modules"
                             and not d.startswith(".") and not d.startswith("build"))
        for name in ("package.json", "package-lock.json"):
            if name in filenames:
                yield os.path.join(dirpath, name)


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    root, node = argv[1], argv[2] if len(argv) == 3 else DEBIAN_12_NODE
    self_test()
    failures, checked, locks = [], 0, 0
    for path in lock_files(root):
        rel = os.path.relpath(path, root)
        if path.endswith("package.json"):
            if not os.path.exists(os.path.join(os.path.dirname(path), "package-lock.json")):
                failures.append(f"{rel}: no package-lock.json beside it (run npm install)")
            continue
        locks += 1
        with open(path, encoding="utf-8") as f:
            lock = json.load(f)
        packages = lock.get("packages")
        if packages is None:
            failures.append(f"{rel}: lockfileVersion {lock.get('lockfileVersion')} "
                            "has no \"packages\" (need lockfileVersion 2 or 3)")
            continue
        for key, entry in sorted(packages.items()):
            spec = (entry.get("engines") or {})
            spec = spec.get("node") if isinstance(spec, dict) else None
            if spec is None:
                continue
            checked += 1
            name = key.rpartition("node_modules/")[2] or "(the package itself)"
            try:
                ok = satisfies(node, spec)
            except RangeError as e:
                failures.append(f"{rel}: {name}@{entry.get('version')}: engines.node "
                                f"{spec!r} not understood ({e})")
                continue
            if not ok:
                failures.append(f"{rel}: {name}@{entry.get('version')} needs node "
                                f"{spec!r}; Debian 12's nodejs is {node}: pin an "
                                "older version")
    if locks == 0:
        failures.append(f"no package-lock.json found under {root}")
    for failure in failures:
        print("FAIL:", failure)
    print(f"{locks} lock files, {checked} engines.node ranges checked against node {node}: "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
