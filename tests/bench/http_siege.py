#!/usr/bin/python3
"""The HTTP door under siege: how fast another client is answered.

Starts a kanband (the binary given) with --http_listen on 127.0.0.1, then
for each siege in turn -- none; N half-open connections from 127.0.0.1
that send the first header lines and then nothing (slowloris); N idle
keep-alive connections -- times GET /api/v1/boards on a fresh connection
from 127.0.0.2 (so that the per-address cap on 127.0.0.1 does not apply to
it), and prints the latency quantiles. Also the number of siege
connections the server closed at accept (over --http_max_connections_per_peer).
Loopback only. Prints figures; asserts nothing.

Usage: tests/bench/http_siege.py build/kanband [--connections=1000] [--requests=200]
           [-- kanband flags, e.g. --http_max_connections_per_peer=2000]
"""
import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def fetch(port, source):
    start = time.perf_counter()
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /api/v1/boards HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:80]
    return time.perf_counter() - start


def measure(port, requests):
    times = sorted(fetch(port, "127.0.0.2") for _ in range(requests))
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))] * 1000
    return "p50 %.2f ms  p99 %.2f ms  max %.2f ms" % (q(0.5), q(0.99), times[-1] * 1000)


def closed_now(sockets):
    closed = 0
    for s in sockets:
        s.setblocking(False)
        try:
            if s.recv(4096) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kanband")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "http_port")
        server = subprocess.Popen(
            [args.kanband, "--listen=127.0.0.1:0", "--db=" + os.path.join(tmp, "kanban.db"),
             "--http_listen=127.0.0.1:0", "--http_port_file=" + port_file] + extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                if os.path.exists(port_file):
                    break
                time.sleep(0.05)
            port = int(open(port_file).read())
            print("kanband", args.kanband, " ".join(extra) or "(default flags)")
            print("no siege:                 ", measure(port, args.requests))

            held = []
            for _ in range(args.connections):
                s = socket.create_connection(("127.0.0.1", port))
                try:
                    s.sendall(b"GET /api/v1/boards HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                except OSError:
                    pass
                held.append(s)
            time.sleep(0.2)
            refused = closed_now(held)
            print("%d half-open (%d closed at accept):" % (args.connections, refused),
                  measure(port, args.requests))
            for s in held:
                s.close()
            time.sleep(0.5)

            held = []
            for _ in range(args.connections):
                s = socket.create_connection(("127.0.0.1", port))
                try:
                    s.sendall(b"GET /api/v1/boards HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                except OSError:
                    pass
                held.append(s)
            time.sleep(0.5)
            refused = closed_now(held)
            print("%d keep-alive (%d closed at accept):" % (args.connections, refused),
                  measure(port, args.requests))
            for s in held:
                s.close()
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    sys.exit(main())
