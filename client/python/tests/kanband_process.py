"""Test support: a real kanband in a temporary directory, and helpers to
wait for conditions with a deadline instead of sleeping."""

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

# Generous: the test machine is small and shared.
START_TIMEOUT = 30.0
WAIT_TIMEOUT = 30.0

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.dirname(HERE)
EXAMPLES_DIR = os.path.join(CLIENT_DIR, "examples")
# A line of kanband --log_rpcs: "... rpc method=/kanban.v1.S/M code=C ...".
_RPC_LINE = re.compile(r" rpc method=/kanban\.v1\.(\S+) code=(\S+)")


def installed_kanban():
    """The kanban package these tests exercise, which must be the installed
    one (pip install client/python), not this source tree: the suite checks
    what a user gets. Raises AssertionError otherwise."""
    import kanban
    where = os.path.realpath(os.path.dirname(kanban.__file__))
    if where.startswith(os.path.realpath(CLIENT_DIR) + os.sep):
        raise AssertionError(
            "kanban imported from the source tree (%s); run the tests with "
            "the python of a venv where client/python is installed" % where)
    return kanban


def kanband_path():
    path = os.environ.get("KANBAND", "")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("set KANBAND to the kanband binary (got %r)" % path)
    return path


class Kanband:
    """One kanband on 127.0.0.1 serving a database in its own temp dir, or
    `db` (a PostgreSQL URI that replicas share; see new_postgres_database()).
    start() may be called again after stop() to restart on the same
    database (and, with same_port, the same port)."""

    def __init__(self, *flags, db=None):
        self._dir = tempfile.TemporaryDirectory(prefix="kanban-py-")
        self.dir = self._dir.name
        self.db = db or os.path.join(self.dir, "kanban.db")
        self.flags = list(flags)
        self.port = 0
        self.process = None
        self._starts = 0

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self, same_port=False):
        self._starts += 1
        port_file = os.path.join(self.dir, "port-%d" % self._starts)
        log_path = os.path.join(self.dir, "kanband-%d.log" % self._starts)
        listen = "127.0.0.1:%d" % (self.port if same_port else 0)
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [kanband_path(), "--listen=" + listen, "--db=" + self.db,
                 "--port_file=" + port_file, "--shutdown_grace_seconds=2"]
                + self.flags, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            port = _read_port(port_file)
            if port:
                self.port = port
                return self
            if self.process.poll() is not None:
                raise RuntimeError("kanband exited with %d:\n%s" % (
                    self.process.returncode, self.log(log_path)))
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("kanband did not start:\n" + self.log(log_path))
            time.sleep(0.02)  # Polls a file that has no change notification.

    def stop(self, sig=signal.SIGTERM):
        """Stops the server with `sig`; returns its exit code."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def restart(self, sig=signal.SIGTERM):
        """Stops the server with `sig` and starts it again on the same port
        and database; returns the exit code of the stopped one."""
        code = self.stop(sig)
        self.start(same_port=True)
        return code

    def log(self, path=None, tail=4000):
        """The end (`tail` characters; None: all) of the log of the current
        (or last) process, or of `path`."""
        path = path or os.path.join(self.dir, "kanband-%d.log" % self._starts)
        try:
            with open(path, errors="replace") as log:
                text = log.read()
        except OSError:
            return ""
        return text if tail is None else text[-tail:]

    def rpcs(self):
        """(method, code) of each RPC the current process logged, in order:
        ("WorkerService/Work", "OK"), ... Needs kanband --log_rpcs. A stream
        is logged when it ends."""
        return _RPC_LINE.findall(self.log(tail=None))

    def close(self):
        self.stop()
        self._dir.cleanup()


POSTGRES_ENV = "KANBAN_TEST_POSTGRES_FILE"


def postgres_server():
    """The suite's PostgreSQL (a libpq URI), from the file named by
    $KANBAN_TEST_POSTGRES_FILE (the CTest fixture `postgres` sets it); None
    when the variable is unset."""
    path = os.environ.get(POSTGRES_ENV, "")
    if not path:
        return None
    with open(path) as f:
        return f.read().strip() or None


_schemas = 0


def new_postgres_database():
    """A fresh schema on the suite's PostgreSQL, created with psql, and a URI
    whose sessions use it: a database of its own for one test, as
    tests/support/backends.cc makes them for the C++ tests."""
    global _schemas
    server = postgres_server()
    if server is None:
        raise RuntimeError("no PostgreSQL: set %s" % POSTGRES_ENV)
    _schemas += 1
    name = "kanban_py_%d_%d" % (os.getpid(), _schemas)
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", server, "-c",
                    "CREATE SCHEMA " + name], check=True, timeout=30)
    return server + "?options=-csearch_path%3D" + name


def _read_port(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return 0
    text = text.strip()
    return int(text) if text.isdigit() else 0  # Empty while being written.


def wait_for(condition, timeout=WAIT_TIMEOUT, interval=0.05, what="condition"):
    """Polls `condition()` until it returns a true value, which is returned;
    fails with AssertionError after `timeout` seconds. For state that can
    only be read by asking (a task's status over RPC)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class EventPuller:
    """Pulls events from one iteration of a Watcher (one generator, so one
    resuming feed across reconnects) only while take() runs: a test
    controls when the watcher reads, and so when it reconnects."""

    def __init__(self, watcher):
        self.watcher = watcher
        self._events = iter(watcher)

    def take(self, count=None, until=None, timeout=WAIT_TIMEOUT):
        """Pulls until `count` events arrived or until(events) holds;
        returns them. On timeout the watcher is closed (ending the pull) and
        AssertionError is raised; errors of the iteration are re-raised."""
        events, error = [], []
        done = threading.Event()

        def pull():
            try:
                while not (until(events) if until else len(events) >= count):
                    events.append(next(self._events))
            except StopIteration:
                error.append(AssertionError(
                    "the iteration ended after %d events" % len(events)))
            except BaseException as e:  # Re-raised on the test's thread.
                error.append(e)
            finally:
                done.set()

        thread = threading.Thread(target=pull, daemon=True)
        thread.start()
        if not done.wait(timeout):
            self.watcher.close()
            thread.join(10)
            raise AssertionError("timed out after %d events: %s" % (
                len(events), [(e.seq, e.kind) for e in events]))
        thread.join()
        if error:
            raise error[0]
        return events


class LineReader:
    """Reads a subprocess's stdout lines on a thread, so a test can wait for
    a line with a deadline."""

    def __init__(self, stream):
        self.lines = []
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,),
                                        daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_until(self, predicate, timeout=WAIT_TIMEOUT):
        """Collects lines until predicate(lines) holds; returns the lines.
        AssertionError on timeout or end of output first."""
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0))
            except queue.Empty:
                raise AssertionError("timed out; lines so far:\n" +
                                     "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError("output ended; lines:\n" +
                                     "\n".join(self.lines))
            self.lines.append(line)
        return self.lines

    def rest(self, timeout=WAIT_TIMEOUT):
        """Waits for the end of output; returns all lines."""
        self._thread.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.lines
            if line is not None:
                self.lines.append(line)


def example(name, *args, stdin=None):
    """Starts examples/<name>.py with the running interpreter (the venv's,
    where kanban is installed) as a subprocess with piped text stdout and
    stderr."""
    return subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES_DIR, name + ".py")] + list(args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# Every test module imports this one first: a run against the source tree
# fails at once instead of passing on code a user never gets.
installed_kanban()
