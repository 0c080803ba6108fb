#!/usr/bin/python3
"""Checks the ghz configs in deploy/ghz/ against the contract in proto/.

Each deploy/ghz/*.json must parse as a JSON object whose keys are ghz config
fields, whose "call" names an RPC that exists in proto/ (and in its "proto"
file, when it names one), whose "data" names only fields of that RPC's
request message, and which bounds every server stream (stream-call-duration
or stream-call-count). At least one config must use server reflection (no
"proto"). Prints each problem; exits 1 if there is any.

usage: check_ghz_configs.py REPO_ROOT
"""
import glob
import json
import os
import re
import sys

# ghz's config file fields (runner.Config's json tags, ghz v0.110+).
GHZ_KEYS = {
    "proto", "protoset", "call", "import-paths", "cacert", "cert", "key", "cname",
    "skip-verify", "insecure", "authority", "async", "rps", "load-schedule",
    "load-start", "load-end", "load-step", "load-step-duration", "load-max-duration",
    "concurrency", "concurrency-schedule", "concurrency-start", "concurrency-end",
    "concurrency-step", "concurrency-step-duration", "concurrency-max-duration",
    "total", "timeout", "duration", "max-duration", "duration-stop", "data",
    "data-file", "binary-file", "metadata", "metadata-file", "stream-interval",
    "stream-call-duration", "stream-call-count", "stream-dynamic-messages",
    "reflect-metadata", "output", "format", "skip-first", "count-errors",
    "connections", "connect-timeout", "keepalive", "enable-compression",
    "lb-strategy", "name", "tags", "cpus", "debug", "host",
}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def blocks(text, keyword):
    """Yields (name, body, start, end) of each `keyword NAME { ... }` at depth 0."""
    depth = 0
    i = 0
    pattern = re.compile(r"\b%s\s+(\w+)\s*\{" % keyword)
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0:
            m = pattern.match(text, i)
            if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                j, d = m.end(), 1
                while d > 0:
                    d += {"{": 1, "}": -1}.get(text[j], 0)
                    j += 1
                yield m.group(1), text[m.end():j - 1], i, j
                i = j
                continue
        i += 1


def remove_nested(body):
    """Drops nested message/enum blocks; keeps the fields of oneof blocks."""
    for keyword in ("message", "enum"):
        while True:
            found = next(blocks(body, keyword), None)
            if found is None:
                break
            body = body[:found[2]] + body[found[3]:]
    return re.sub(r"\boneof\s+\w+\s*\{([^{}]*)\}", r"\1", body)


def parse_protos(root):
    """Returns ({"pkg.Service.Method": (request, server_streaming, file)},
    {"pkg.Message": set(field names, proto and JSON spellings)})."""
    methods, messages = {}, {}
    for path in glob.glob(os.path.join(root, "proto", "**", "*.proto"), recursive=True):
        rel = os.path.relpath(path, root)
        text = strip_comments(open(path, encoding="utf-8").read())
        m = re.search(r"\bpackage\s+([\w.]+)\s*;", text)
        pkg = m.group(1) + "." if m else ""
        for name, body, _, _ in blocks(text, "message"):
            fields = set()
            for f in re.finditer(r"(?:^|;|\s)(?:repeated\s+|optional\s+)?[\w.]+\s+(\w+)\s*=\s*\d+",
                                 remove_nested(body)):
                proto_name = f.group(1)
                fields.add(proto_name)
                fields.add(re.sub(r"_(\w)", lambda x: x.group(1).upper(), proto_name))
            messages[pkg + name] = fields
        for service, body, _, _ in blocks(text, "service"):
            for r in re.finditer(
                    r"\brpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)",
                    body):
                request = r.group(3) if "." in r.group(3) else pkg + r.group(3)
                methods[pkg + service + "." + r.group(1)] = (request, bool(r.group(4)), rel)
    return methods, messages


def check(root):
    methods, messages = parse_protos(root)
    problems = []
    configs = sorted(glob.glob(os.path.join(root, "deploy", "ghz", "*.json")))
    if not configs:
        problems.append("no deploy/ghz/*.json")
    reflection = 0
    for path in configs:
        name = os.path.relpath(path, root)
        try:
            config = json.load(open(path, encoding="utf-8"))
        except ValueError as e:
            problems.append("%s: not JSON: %s" % (name, e))
            continue
        if not isinstance(config, dict):
            problems.append("%s: not a JSON object" % name)
            continue
        for key in sorted(set(config) - GHZ_KEYS):
            problems.append("%s: %r is not a ghz config field" % (name, key))
        call = str(config.get("call", "")).replace("/", ".")
        if call not in methods:
            problems.append("%s: call %r is not an RPC in proto/" % (name, config.get("call")))
            continue
        request, server_streaming, proto_file = methods[call]
        if "proto" in config:
            if config["proto"] != proto_file:
                problems.append("%s: %s is defined in %s, not in %s" %
                                (name, call, proto_file, config["proto"]))
            for p in config.get("import-paths", []):
                if not os.path.isdir(os.path.join(root, p)):
                    problems.append("%s: import path %r is not a folder of the repo" % (name, p))
        else:
            reflection += 1
        data = config.get("data", {})
        if not isinstance(data, dict):
            problems.append("%s: data is not an object" % name)
        elif request in messages:
            for key in sorted(set(data) - messages[request]):
                problems.append("%s: data field %r is not in %s" % (name, key, request))
        else:
            problems.append("%s: request message %s not found" % (name, request))
        if server_streaming and not ("stream-call-duration" in config or
                                     "stream-call-count" in config):
            problems.append("%s: server stream without stream-call-duration or "
                            "stream-call-count never ends" % name)
        if not config.get("insecure"):
            problems.append("%s: kanband serves plaintext; set \"insecure\": true" % name)
    if configs and reflection == 0:
        problems.append("no config uses server reflection (one without \"proto\")")
    for p in problems:
        print(p)
    print("%d configs checked against %d RPCs: %s" %
          (len(configs), len(methods), "OK" if not problems else "%d problems" % len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(check(sys.argv[1]))
