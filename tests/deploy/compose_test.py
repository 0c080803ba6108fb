#!/usr/bin/env python3
"""What can be checked of deploy/compose/compose.yaml without a Docker engine.

  - It parses as YAML (merge keys resolved) with the services the walk-through
    names: postgres, nginx and kanband-a/b/c.
  - The kanband replicas share one --db (a PostgreSQL URI without a password)
    and --auth=token, listen on 0.0.0.0:7300, and have distinct --replica_id
    values; every flag they pass is one `kanband --helpfull` lists.
  - Their entrypoint, run by /bin/sh with compose's `$$` unescaped, hands the
    secret file's content to kanband as PGPASSWORD and passes the arguments
    through unchanged (a stand-in program prints what it got).
  - The build names deploy/Dockerfile; nginx mounts the shipped
    deploy/nginx/kanban-grpc.conf, whose upstream servers are exactly the
    replica services on port 7300 and whose listen port is the one published;
    the secret file is git-ignored.
  - `docker compose config -q` accepts it, when the compose plugin exists.

Exits 77 (ctest SKIP_RETURN_CODE) without PyYAML (Debian: python3-yaml).
Usage: compose_test.py COMPOSE_YAML KANBAND
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML is not installed (Debian package: python3-yaml)")
    sys.exit(77)

failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message)


def flag_values(command, name):
    prefix = f"--{name}="
    return [arg[len(prefix):] for arg in command if arg.startswith(prefix)]


def check_entrypoint(entrypoint, command):
    """Runs the entrypoint with a stand-in kanband and a temporary secret."""
    if not (isinstance(entrypoint, list) and entrypoint[:2] == ["/bin/sh", "-c"]):
        fail(f"replica entrypoint is not [/bin/sh, -c, SCRIPT, ...]: {entrypoint}")
        return
    if "$" in entrypoint[2].replace("$$", ""):
        fail(f"entrypoint script has a lone $, which compose would interpolate: "
             f"{entrypoint[2]}")
    with tempfile.TemporaryDirectory() as tmp:
        secret = os.path.join(tmp, "pg_password")
        with open(secret, "w") as f:
            f.write("s3cret with spaces\n")
        stand_in = os.path.join(tmp, "kanband")
        with open(stand_in, "w") as f:
            f.write('#!/bin/sh\nprintf "PGPASSWORD=%s\\n" "$PGPASSWORD"\n'
                    'for arg in "$@"; do printf "ARG=%s\\n" "$arg"; done\n')
        os.chmod(stand_in, stat.S_IRWXU)
        # Compose turns `$$` into `$` before the shell sees the script.
        script = (entrypoint[2].replace("$$", "$")
                  .replace("/run/secrets/pg_password", secret)
                  .replace("/usr/local/bin/kanband", stand_in))
        if script == entrypoint[2].replace("$$", "$"):
            fail("entrypoint does not read /run/secrets/pg_password or run "
                 "/usr/local/bin/kanband")
            return
        # One argument with a space, as `docker compose run` may pass.
        args = command + ["--title=two words"]
        result = subprocess.run(["/bin/sh", "-c", script] + entrypoint[3:] + args,
                                capture_output=True, text=True, timeout=30)
    want = ["PGPASSWORD=s3cret with spaces"] + [f"ARG={arg}" for arg in args]
    if result.returncode != 0 or result.stdout.splitlines() != want:
        fail(f"entrypoint ran with exit {result.returncode}, printed "
             f"{result.stdout.splitlines()} {result.stderr.strip()}; want {want}")


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    compose_path, kanband = argv[1], argv[2]
    compose_dir = os.path.dirname(os.path.abspath(compose_path))
    with open(compose_path, encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    services = compose.get("services") or {}

    replicas = sorted(name for name in services if name.startswith("kanband-"))
    for name in ["postgres", "nginx"]:
        if name not in services:
            fail(f"no service {name}")
    if len(replicas) < 2:
        fail(f"want several kanband-* services, have {replicas}")

    helpfull = subprocess.run([kanband, "--helpfull"], capture_output=True,
                              text=True, timeout=60)
    known_flags = set(re.findall(r"^\s+--([a-z_]+) ", helpfull.stdout + helpfull.stderr,
                                 re.M))
    if "replica_id" not in known_flags:
        fail(f"`{kanband} --helpfull` lists no --replica_id: cannot check flags")

    dbs, ids = set(), []
    for name in replicas:
        service = services[name]
        command = service.get("command") or []
        for arg in command:
            flag = re.match(r"--([a-z_]+)=", arg)
            if not flag or flag.group(1) not in known_flags:
                fail(f"{name}: {arg!r} is not a kanband flag")
        db = flag_values(command, "db")
        if len(db) != 1 or not db[0].startswith("postgresql://"):
            fail(f"{name}: want one --db=postgresql://..., have {db}")
        elif re.match(r"postgresql://[^@/]*:[^@/]*@", db[0]):
            fail(f"{name}: --db carries a password: {db[0]}")
        dbs.update(db)
        ids += flag_values(command, "replica_id")
        for flag, value in [("listen", "0.0.0.0:7300"), ("auth", "token")]:
            if flag_values(command, flag) != [value]:
                fail(f"{name}: want --{flag}={value}, have {flag_values(command, flag)}")
        if "pg_password" not in (service.get("secrets") or []):
            fail(f"{name}: does not get the pg_password secret")
        build = service.get("build") or {}
        dockerfile = os.path.join(compose_dir, build.get("context", "."),
                                  build.get("dockerfile", "Dockerfile"))
        if not os.path.basename(dockerfile) == "Dockerfile" or not os.path.isfile(dockerfile):
            fail(f"{name}: builds from {dockerfile}, which does not exist")
        check_entrypoint(service.get("entrypoint"), command)
    if len(dbs) != 1:
        fail(f"the replicas do not share one --db: {sorted(dbs)}")
    if len(ids) != len(replicas) or len(set(ids)) != len(ids):
        fail(f"want one distinct --replica_id per replica, have {ids}")

    # nginx: the shipped file, pointing at exactly these replicas.
    nginx = services.get("nginx") or {}
    conf = None
    for volume in nginx.get("volumes") or []:
        source, _, target = str(volume).partition(":")
        if source.endswith("kanban-grpc.conf") and target.startswith("/etc/nginx/conf.d/"):
            conf = os.path.normpath(os.path.join(compose_dir, source))
    if conf is None or not os.path.isfile(conf):
        fail(f"nginx does not mount deploy/nginx/kanban-grpc.conf into conf.d: {conf}")
    else:
        with open(conf, encoding="utf-8") as f:
            text = f.read()
        upstreams = sorted(re.findall(r"^\s*server\s+([a-z0-9-]+):7300\b", text, re.M))
        if upstreams != replicas:
            fail(f"{conf} balances over {upstreams}, compose runs {replicas}")
        listen = re.findall(r"^\s*listen\s+(\d+)\b", text, re.M)
        published = [str(p).rsplit(":", 2)[-1] for p in nginx.get("ports") or []]
        if not listen or any(port not in published for port in listen):
            fail(f"nginx listens on {listen}, compose publishes {published}")

    # The secret stays out of git.
    secret_file = ((compose.get("secrets") or {}).get("pg_password") or {}).get("file", "")
    ignore = os.path.join(compose_dir, ".gitignore")
    top = os.path.normpath(secret_file).split(os.sep)[0]
    if not os.path.isfile(ignore) or f"{top}/" not in open(ignore).read().split():
        fail(f"the secret {secret_file} is not ignored by {ignore}")

    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"],
                                 capture_output=True).returncode == 0:
        env = dict(os.environ)
        result = subprocess.run([docker, "compose", "-f", compose_path, "config", "-q"],
                                capture_output=True, text=True, env=env)
        if result.returncode != 0:
            fail(f"docker compose config: {result.stderr.strip()}")
        else:
            print("ok: docker compose config accepts it")
    else:
        print("note: no `docker compose` here; checked with PyYAML only")

    if failures:
        print(f"{len(failures)} problem(s) with {compose_path}")
        return 1
    print(f"ok: {compose_path}: {len(replicas)} replicas ({', '.join(ids)}) on one "
          f"database, behind nginx")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
