"""Worker: claims tasks one at a time and runs a handler on each.

    def handle(ctx):                    # ctx: kanban.TaskContext
        for step in steps(ctx.task):
            if ctx.cancelled:           # The lease was lost: stop soon.
                return None             # (Whatever is returned is dropped.)
            do(step)
        return "the result"             # CompleteTask(result)

    with kanban.Worker(channel, board="default", labels=["gpu"]) as worker:
        worker.run(handle)              # Until stop(), e.g. from a signal.

The handler's outcome decides the report:
  returns R               CompleteTask(result=R): DONE. None is "", anything
                          other than str is str(R).
  raises Release          ReleaseTask: READY at once, the attempt not counted.
  raises PermanentError   FailTask(retry=False): BLOCKED, another attempt
                          would fail the same way.
  raises any Exception    FailTask(retry=True): READY after a backoff while
                          attempts are left, else BLOCKED.
The exception's text becomes the task's last_error. Nothing is reported once
the lease is lost. A BaseException (KeyboardInterrupt, SystemExit) gives the
task back with ReleaseTask and propagates.

Two ways to talk to the server, with the same handler contract and events:

- A worker stream (the default): one WorkerService.Work call per run(). The
  server pushes assignments to it; heartbeats (every heartbeat_interval, a
  third of the lease) and outcomes ride on it. A lease the server revokes (an
  operator moved the task to BLOCKED or ARCHIVED) is pushed at once and
  cancels the context. A stream that breaks is re-attached after
  retry_delay, resuming the old one, while the handler keeps running.
- The unary calls (streams=False, or when the server answers Work with
  UNIMPLEMENTED: an older kanband, or one run with --worker_streams=false):
  ClaimTask long-polls, a background thread heartbeats every third of the
  lease, and CompleteTask/FailTask/ReleaseTask report.

Either way, when the server says the lease is LOST (an operator moved the
task, the lease expired or was reclaimed) the context is cancelled.
"""

import collections
import contextlib
import logging
import os
import queue
import socket
import threading
import time

import grpc

from kanban.client import with_token
from kanban.v1 import kanban_pb2, kanban_pb2_grpc

_log = logging.getLogger("kanban.worker")

_DEFAULT_LEASE = 60.0
_LEASE_LOST_PREFIX = "lease lost: "
_TRANSIENT = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
})
# A stream also breaks with these when its connection is cut.
_STREAM_TRANSIENT = _TRANSIENT | {grpc.StatusCode.INTERNAL,
                                  grpc.StatusCode.UNKNOWN}
# google.rpc.Code numbers (WorkResult.code) to grpc.StatusCode.
_CODES = {code.value[0]: code for code in grpc.StatusCode}

# What a worker reports as it goes, to Worker(on_event=...). kind is one of
# "claimed", "completed", "failed" (detail: the error), "released", "lost"
# (detail: the reason; nothing was reported) and "error" (a call failed and
# is retried, or a report could not be delivered; detail: the status).
WorkerEvent = collections.namedtuple(
    "WorkerEvent", "kind task_id title attempt detail")

# What the handler's run asks to report. action: "complete" (detail: the
# result), "fail" (retry; detail: the error) or "release".
_Outcome = collections.namedtuple("_Outcome", "action retry detail")
_RELEASE = _Outcome("release", False, "")
_EVENT_OF = {"complete": "completed", "fail": "failed", "release": "released"}

# One try at reporting an outcome, on either path: state "done", "lost"
# (detail: the reason) or "error" (code: a grpc.StatusCode; detail: its
# message).
_Answer = collections.namedtuple("_Answer", "state code detail")
_DONE = _Answer("done", None, "")


class Release(Exception):
    """Raised by a handler to give its task back (ReleaseTask)."""


class PermanentError(Exception):
    """Raised by a handler for a failure that retrying cannot fix
    (FailTask with retry=False: the task becomes BLOCKED)."""


class _StreamsUnimplemented(Exception):
    """Work answered UNIMPLEMENTED before anything else: use the unary
    calls."""


def default_worker_id():
    """"hostname-pid" for this process."""
    return "%s-%d" % (socket.gethostname() or "worker", os.getpid())


def _seconds(timestamp):
    return timestamp.seconds + timestamp.nanos / 1e9


def _channel_of(channel_or_client):
    return getattr(channel_or_client, "channel", channel_or_client)
class TaskContext:
    """One claimed task, as the handler sees it; valid during the handler
    call. Thread-safe: heartbeats (a thread, or the stream's reader) update
    it while the handler reads it.

    Attributes:
      task: the kanban_pb2.Task as claimed (status RUNNING).
      lease: the kanban_pb2.Lease (its expires_at is not updated; see
        lease_expires_at).
      cancel_event: a threading.Event set when the lease is lost.
    """

    def __init__(self, worker, task, lease):
        self.task = task
        self.lease = lease
        self.cancel_event = threading.Event()
        self._worker = worker
        self._lock = threading.Lock()
        self._expires_at = _seconds(lease.expires_at)
        self._reason = ""

    @property
    def cancelled(self):
        """True once the lease is lost; the handler should stop soon, and
        whatever it returns afterwards is dropped (the server would refuse
        it)."""
        return self.cancel_event.is_set()

    @property
    def cancel_reason(self):
        """Why the lease was lost ("cancelled", "expired", ...); "" while
        held."""
        with self._lock:
            return self._reason

    @property
    def lease_expires_at(self):
        """When the lease runs out unless renewed, in seconds since the
        epoch (time.time())."""
        with self._lock:
            return self._expires_at

    @property
    def stopping(self):
        """True once Worker.stop() was called. The worker still reports what
        the handler returns (stop drains); raise Release to give the task
        back instead."""
        return self._worker.stopping

    def wait_cancelled(self, timeout=None):
        """Waits until the lease is lost or `timeout` seconds pass; returns
        cancelled. A handler that sleeps should sleep here."""
        return self.cancel_event.wait(timeout)

    def _lose(self, reason):
        with self._lock:
            if self._reason:
                return  # The first reason wins.
            self._reason = reason or "unknown"
        self.cancel_event.set()

    def _extend(self, expires_at):
        with self._lock:
            self._expires_at = expires_at




class Worker:
    """Claims tasks and runs a handler on each, one at a time.

    Args:
      channel: a grpc.Channel or a kanban.Client.
      board: board to claim from; "" is the server's "default".
      worker_id: names this worker in leases and ListWorkers; default
        default_worker_id().
      labels: claim only tasks carrying all of these labels.
      assignee: also claim tasks assigned to this name.
      lease: seconds of lease asked for on each claim (server: 1 s to 1 h;
        0 asks for its default, 60 s). Heartbeats renew it every third.
      claim_wait: seconds one ClaimTask waits on the server (at most the
        server's --max_claim_wait, 30 by default); on a stream, how long
        exit_when_idle waits for an assignment once attached.
      rpc_timeout: deadline of every other call, added to claim_wait for
        ClaimTask; on a stream, how long the end of run() waits for the
        server to end it.
      retry_delay: pause after a transient failure (UNAVAILABLE,
        DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED) and before a broken
        stream is re-attached; a worker also never claims more often than
        once per retry_delay.
      on_event: called with a WorkerEvent on the thread running run(), never
        concurrently; may call stop(). Heartbeat failures and stream breaks
        are logged to the "kanban.worker" logger instead.
      token: a bearer token for this worker's calls (kanband --auth=token),
        typically a worker token whose worker_id is this worker_id; it wins
        over a token the channel already sends (connect(token=...)). None or
        "": whatever the channel sends. ValueError if metadata cannot carry it.
        Without a token, or with one that is unknown, revoked or not allowed
        to claim as worker_id, run() raises the claim's grpc.RpcError
        (UNAUTHENTICATED or PERMISSION_DENIED).
      streams: True (the default) works over a WorkerService.Work stream,
        falling back to the unary calls when the server answers
        UNIMPLEMENTED; False uses the unary calls only.

    Thread-safety: stop(), stopping and join() may be called from any thread
    and from signal handlers; run() from one thread at a time.
    """

    def __init__(self, channel, board="", worker_id=None, labels=(),
                 assignee="", lease=_DEFAULT_LEASE, claim_wait=30.0,
                 rpc_timeout=10.0, retry_delay=1.0, on_event=None,
                 token=None, streams=True):
        if lease < 0 or claim_wait < 0 or rpc_timeout <= 0 or retry_delay < 0:
            raise ValueError("Worker: durations must not be negative, "
                             "rpc_timeout must be positive")
        channel = _channel_of(channel)
        if token:
            channel = with_token(channel, token)
        self._tasks = kanban_pb2_grpc.KanbanServiceStub(channel)
        self._heartbeats = kanban_pb2_grpc.HeartbeatServiceStub(channel)
        self._work = kanban_pb2_grpc.WorkerServiceStub(channel)
        self.board = board
        self.worker_id = worker_id or default_worker_id()
        self.labels = list(labels)
        self.assignee = assignee
        self.lease = lease
        self.claim_wait = claim_wait
        self.rpc_timeout = rpc_timeout
        self.retry_delay = retry_delay
        self.streams = streams
        self._on_event = on_event
        # Reentrant: stop() may run in a signal handler on a thread that
        # already holds the lock.
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._running = False
        self._path = None  # The _StreamPath or _UnaryPath run() is using.
        self._thread = None
        self._thread_error = None

    # ---- Control ------------------------------------------------------------

    @property
    def stopping(self):
        return self._stop_event.is_set()

    def stop(self):
        """Asks run() to return: claims nothing new and cancels a waiting
        claim (or half-closes an idle stream), but lets a running handler
        finish and reports its outcome. Returns at once; sticky."""
        with self._lock:
            self._stop_event.set()
            if self._path is not None:
                self._path.wake()

    def start(self, handler, **run_args):
        """Runs run(handler, **run_args) on a background thread; returns
        self. join() waits for it."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("Worker.start: already started")
            self._thread = threading.Thread(
                target=self._run_in_thread, args=(handler,), kwargs=run_args,
                name="kanban-worker-" + self.worker_id, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout=None):
        """Waits for the thread start() began; returns True once it ended,
        and re-raises what run() raised there."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        if self._thread_error is not None:
            error, self._thread_error = self._thread_error, None
            raise error
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is None:
            self.join()
        return False

    def _run_in_thread(self, handler, **run_args):
        try:
            self.run(handler, **run_args)
        except BaseException as error:  # Re-raised by join().
            self._thread_error = error

    # ---- The loop -----------------------------------------------------------

    def run(self, handler, max_tasks=0, exit_when_idle=False):
        """Processes tasks with `handler(ctx)` until stop(), `max_tasks`
        claimed tasks (0: no limit) or, with exit_when_idle, a claim that
        found nothing (on a stream: no assignment within claim_wait of
        attaching). Returns the number of tasks claimed. On a stream, a task
        pushed that it will not run is given back before it returns.

        Raises grpc.RpcError when claiming fails with a non-transient code
        (NOT_FOUND board, INVALID_ARGUMENT, PERMISSION_DENIED, ...: ClaimTask's
        error, or the one that ended the stream); transient failures are
        retried after retry_delay. RuntimeError if run() is already running.
        """
        with self._lock:
            if self._running:
                raise RuntimeError("Worker.run is already running")
            self._running = True
        try:
            if self.streams:
                try:
                    return self._run_on(_StreamPath(self), handler, max_tasks,
                                        exit_when_idle)
                except _StreamsUnimplemented:
                    _log.info("WorkerService.Work is UNIMPLEMENTED on the "
                              "server: using ClaimTask and Heartbeat")
            return self._run_on(_UnaryPath(self), handler, max_tasks,
                                exit_when_idle)
        finally:
            with self._lock:
                self._running = False

    def _run_on(self, path, handler, max_tasks, exit_when_idle):
        """The loop of run() over `path` (a _StreamPath or _UnaryPath);
        returns the number of tasks claimed, and closes `path`. Raises what
        run() raises, and _StreamsUnimplemented (before any task)."""
        with self._lock:
            self._path = path
        processed = 0
        try:
            while not max_tasks or processed < max_tasks:
                if self.stopping:
                    break
                started = time.monotonic()
                try:
                    ctx = path.claim()
                except grpc.RpcError as error:
                    if error.code() not in path.transient:
                        raise
                    self._emit("error", None, "%s: %s %s" % (
                        path.name, error.code().name, error.details()))
                    self._stop_event.wait(self.retry_delay)
                    continue
                if ctx is None:
                    if self.stopping or exit_when_idle:
                        break
                    # A short claim_wait (or a server answering early) must
                    # not turn into a busy poll.
                    rest = self.retry_delay - (time.monotonic() - started)
                    if rest > 0:
                        self._stop_event.wait(rest)
                    continue
                processed += 1
                self._process(ctx, handler, path)
        finally:
            with self._lock:
                self._path = None
            path.close()
        return processed

    def _claim_request(self):
        """The ClaimTaskRequest for this worker, without `wait`."""
        request = kanban_pb2.ClaimTaskRequest(
            board=self.board, worker_id=self.worker_id, labels=self.labels,
            assignee=self.assignee)
        if self.lease > 0:
            request.lease_duration.FromNanoseconds(int(self.lease * 1e9))
        return request

    def _process(self, ctx, handler, path):
        """Runs `handler` on one claimed task under `path`'s heartbeats, then
        reports its outcome (see _report). Returns None; re-raises a
        BaseException from the handler after giving the task back."""
        self._emit("claimed", ctx.task, "")
        try:
            with path.heartbeats(ctx):
                outcome = _handler_outcome(handler, ctx)
        except BaseException:
            self._report(ctx, _RELEASE, path)
            raise
        self._report(ctx, outcome, path)

    def _report(self, ctx, outcome, path):
        """Delivers `outcome` with path.settle() until it is done, the lease
        is lost, or a failure that retrying cannot fix (or that outlasts the
        lease); emits the matching event. Returns None; raises what settle()
        raises (a stream ended for good)."""
        kind = _EVENT_OF[outcome.action]
        while True:
            if ctx.cancelled:
                self._emit("lost", ctx.task, ctx.cancel_reason)
                return
            answer = path.settle(ctx, outcome)
            if answer.state == "done":
                detail = outcome.detail if outcome.action == "fail" else ""
                self._emit(kind, ctx.task, detail)
                return
            if answer.state == "lost":
                ctx._lose(answer.detail)
                continue
            self._emit("error", ctx.task, "reporting %s: %s %s" % (
                kind, answer.code.name, answer.detail))
            # The server would refuse once the lease is over. stop() does not
            # cut this short: a draining worker still reports.
            if (answer.code not in _TRANSIENT
                    or time.time() >= ctx.lease_expires_at):
                return
            time.sleep(self.retry_delay)

    def _emit(self, kind, task, detail):
        if self._on_event is None:
            return
        if task is None:
            event = WorkerEvent(kind, "", "", 0, detail)
        else:
            event = WorkerEvent(kind, task.id, task.title, task.attempt, detail)
        self._on_event(event)


def _handler_outcome(handler, ctx):
    """Runs handler(ctx) and returns the _Outcome to report. A BaseException
    that is not an Exception (KeyboardInterrupt, SystemExit) propagates."""
    try:
        result = handler(ctx)
    except Release:
        return _RELEASE
    except PermanentError as error:
        return _Outcome("fail", False, _error_text(error))
    except Exception as error:  # The handler's failure, reported.
        _log.debug("handler failed on %s", ctx.task.id, exc_info=True)
        return _Outcome("fail", True, _error_text(error))
    return _Outcome("complete", False,
                    "" if result is None else
                    result if isinstance(result, str) else str(result))


def _error_text(error):
    return str(error) or type(error).__name__


def _lease_seconds(lease, fallback):
    """A Lease's duration in seconds, or `fallback` (then the server's
    default) when it has none."""
    seconds = lease.duration.ToNanoseconds() / 1e9
    if seconds > 0:
        return seconds
    return fallback if fallback > 0 else _DEFAULT_LEASE


# ---- The unary calls ---------------------------------------------------------


class _UnaryPath:
    """Claims with ClaimTask, heartbeats with Heartbeat on a thread per task,
    reports with CompleteTask, FailTask or ReleaseTask.

    Thread-safety: claim(), heartbeats(), settle() and close() from the
    thread running run(); wake() from any thread or a signal handler.
    """

    name = "ClaimTask"
    transient = _TRANSIENT

    def __init__(self, worker):
        self._worker = worker
        self._claim = None  # The ClaimTask future in flight, under worker._lock.

    def claim(self):
        """Long-polls ClaimTask for up to claim_wait; returns a TaskContext,
        or None when nothing was claimable or stop() cut the wait short.
        Raises the call's grpc.RpcError."""
        worker = self._worker
        request = worker._claim_request()
        request.wait.FromNanoseconds(int(worker.claim_wait * 1e9))
        with worker._lock:
            if worker.stopping:
                return None
            future = worker._tasks.ClaimTask.future(
                request, timeout=worker.claim_wait + worker.rpc_timeout)
            self._claim = future
            # A stop() in a signal handler between the check above and the
            # assignment did not see this call; cancel it here.
            if worker.stopping:
                future.cancel()
        try:
            # A cancel that crosses the answer leaves the future done with
            # the task: it is processed then, not lost until lease expiry.
            response = future.result()
        except grpc.FutureCancelledError:
            return None
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED and worker.stopping:
                return None
            raise
        finally:
            with worker._lock:
                self._claim = None
        if not response.HasField("task"):
            return None
        return TaskContext(worker, response.task, response.lease)

    def wake(self):
        """Cancels a waiting ClaimTask (stop()). Returns None."""
        with self._worker._lock:
            if self._claim is not None:
                self._claim.cancel()

    @contextlib.contextmanager
    def heartbeats(self, ctx):
        """Context manager: a thread heartbeats `ctx` while it is entered."""
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(ctx, done),
                                name="kanban-heartbeat", daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join()

    def _heartbeat(self, ctx, done):
        """Heartbeats every third of the lease until `done`, cancelling `ctx`
        when the server says the lease is LOST or it runs out unrenewed."""
        worker = self._worker
        lease = _lease_seconds(ctx.lease, worker.lease)
        request = kanban_pb2.HeartbeatRequest(
            worker_id=worker.worker_id,
            leases=[kanban_pb2.HeldLease(task_id=ctx.task.id,
                                         lease_token=ctx.lease.token)])
        while not done.wait(lease / 3):
            if ctx.cancelled:
                return  # A lost lease needs no more heartbeats.
            expires_at = ctx.lease_expires_at
            # An answer after the lease ran out would be of no use.
            timeout = max(min(worker.rpc_timeout, expires_at - time.time()),
                          0.001)
            try:
                response = worker._heartbeats.Heartbeat(request, timeout=timeout)
            except grpc.RpcError as error:
                _log.warning("Heartbeat for %s: %s %s", ctx.task.id,
                             error.code().name, error.details())
                # Unrenewed, the server reclaims the task at expiry; the
                # handler should not keep working past that.
                if time.time() >= expires_at:
                    ctx._lose("expired")
                continue
            if len(response.leases) != 1:
                _log.warning("Heartbeat: %d lease statuses for 1 lease",
                             len(response.leases))
                continue
            _apply_lease_status(ctx, response.leases[0])

    def settle(self, ctx, outcome):
        """One CompleteTask, FailTask or ReleaseTask call for `outcome`;
        returns its _Answer (FAILED_PRECONDITION "lease lost: R" is lost
        with reason R)."""
        worker = self._worker
        task_id, token = ctx.task.id, ctx.lease.token
        if outcome.action == "complete":
            call = worker._tasks.CompleteTask
            request = kanban_pb2.CompleteTaskRequest(
                task_id=task_id, lease_token=token, result=outcome.detail)
        elif outcome.action == "release":
            call = worker._tasks.ReleaseTask
            request = kanban_pb2.ReleaseTaskRequest(
                task_id=task_id, lease_token=token)
        else:
            call = worker._tasks.FailTask
            request = kanban_pb2.FailTaskRequest(
                task_id=task_id, lease_token=token, error=outcome.detail,
                retry=outcome.retry)
        try:
            call(request, timeout=worker.rpc_timeout)
        except grpc.RpcError as error:
            details = error.details() or ""
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                if details.startswith(_LEASE_LOST_PREFIX):
                    details = details[len(_LEASE_LOST_PREFIX):]
                return _Answer("lost", None, details)
            return _Answer("error", error.code(), details)
        return _DONE

    def close(self):
        """Nothing to close."""


def _apply_lease_status(ctx, status):
    """Applies a heartbeat's LeaseStatus to `ctx`: a new expiry, or the
    context cancelled with the reason. Returns True when the lease is
    lost."""
    if status.state == kanban_pb2.LeaseStatus.EXTENDED:
        ctx._extend(_seconds(status.expires_at))
        return False
    ctx._lose(status.reason)
    return True


# ---- Worker streams ----------------------------------------------------------


class _WorkStream:
    """One WorkerService.Work call. Requests go out through a queue that
    gRPC's thread consumes; `call` is the iterator of responses, which one
    thread reads. Thread-safe."""

    def __init__(self, stub, attach):
        self._lock = threading.Lock()
        self._queue = queue.Queue()
        self._open = True  # Requests may still be sent.
        self._queue.put(attach)
        self.call = stub.Work(self._requests())

    def _requests(self):
        while True:
            request = self._queue.get()
            if request is None:
                return  # Half-closes the stream.
            yield request

    def send(self, request):
        """Queues `request`; returns False, dropping it, once half-closed."""
        with self._lock:
            if self._open:
                self._queue.put(request)
            return self._open

    def half_close(self):
        """Ends the requests (WritesDone): the server answers what it was
        sent and ends the stream. Also frees gRPC's thread after the stream
        ended. Idempotent."""
        with self._lock:
            if self._open:
                self._open = False
                self._queue.put(None)

    def cancel(self):
        self.call.cancel()


class _StreamPath:
    """Works over WorkerService.Work: one stream at a time, with a window of
    one lease (max_outstanding 1; the leases listed when re-attaching count
    in it), re-attached after a transient break, resuming the old one.

    Two threads of its own: a reader (opens each stream and reads it to its
    end, applying leases and queueing assignments and results) and a ticker
    (heartbeats every heartbeat_interval, also when idle). The thread running
    run() takes assignments (claim) and waits for results (settle).

    Thread-safety: claim(), heartbeats(), settle() and close() from the
    thread running run(); wake() from any thread or a signal handler. All
    state below is guarded by _cond.
    """

    name = "Work"
    transient = _STREAM_TRANSIENT

    def __init__(self, worker):
        self._worker = worker
        self._unary = _UnaryPath(worker)  # Gives back what a stream cannot.
        self._cond = threading.Condition(threading.RLock())
        self._held = {}                      # task_id -> TaskContext held.
        self._waiting = collections.deque()  # Received, not claimed yet.
        self._unanswered = {}                # op_id -> WorkOutcome sent.
        self._results = {}                   # op_id -> WorkResult, for settle.
        self._next_op = 1
        self._call = None      # The _WorkStream open, attached or not.
        self._stream = None    # It, once attached, until it ends or goes away.
        self._stream_id = ""   # Of the last stream attached: resumed next.
        self._interval = (worker.lease or _DEFAULT_LEASE) / 3
        self._beat_due = 0.0   # time.monotonic() of the next heartbeat.
        self._received = False  # Anything, on any stream.
        self._break = None     # The last transient break claim() has not raised.
        self._error = None     # What ended streaming for good.
        self._closing = False
        self._done = False     # The reader ended: the ticker ends too.
        self._late = []        # Assignments that came after close() began.
        self._reader = self._thread(self._reader_thread, "kanban-work-stream")
        self._ticker = self._thread(self._tick, "kanban-work-heartbeat")

    def _thread(self, target, name):
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    # ---- What run() calls ---------------------------------------------------

    def claim(self):
        """Waits for an assignment, up to claim_wait once a stream is
        attached (what the server can push at once has then been claimed);
        returns its TaskContext, or None (nothing came, or stop()). Raises
        the error that ended streaming (a grpc.RpcError, or
        _StreamsUnimplemented), or else the last transient break not raised
        yet (the stream is re-attached meanwhile)."""
        deadline = None
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._worker.stopping:
                    return None
                if self._waiting:
                    return self._waiting.popleft()
                if self._break is not None:
                    error, self._break = self._break, None
                    raise error
                if deadline is None and self._stream is not None:
                    deadline = time.monotonic() + self._worker.claim_wait
                remaining = (self._interval if deadline is None
                             else deadline - time.monotonic())
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def wake(self):
        """Wakes a waiting claim() to see stop(). Returns None."""
        with self._cond:
            self._cond.notify_all()

    def heartbeats(self, ctx):
        """The ticker heartbeats every lease held: nothing to add."""
        return contextlib.nullcontext()

    def settle(self, ctx, outcome):
        """Sends `outcome` on the stream (or on the next one, if it is
        re-attaching) and waits for its result; returns its _Answer. An error
        answer when the stream stays down past the lease's expiry. Raises
        the error that ended streaming."""
        with self._cond:
            op_id = self._send_outcome(ctx, outcome)
            result = self._await_result(op_id, ctx)
            if result is None:
                return _Answer("error", grpc.StatusCode.DEADLINE_EXCEEDED,
                               "no result before the lease expired")
            answer = _answer_of(result)
            if answer.state != "error" or answer.code not in _TRANSIENT:
                self._drop(ctx)
            return answer

    def close(self):
        """Ends streaming: gives back the assignments not run (a release
        outcome on the stream while it is writable, else ReleaseTask),
        half-closes, reads the stream to its end (cancelled after
        rpc_timeout) and stops both threads. Returns None."""
        with self._cond:
            self._closing = True
            leftovers = list(self._waiting)
            self._waiting.clear()
            released = {}  # op_id -> the TaskContext it releases.
            if self._stream is not None:
                released = {self._send_outcome(ctx, _RELEASE): ctx
                            for ctx in leftovers}
                leftovers = []
                self._stream.half_close()
            elif self._call is not None:
                self._call.cancel()  # Not attached: nothing to wait for.
            self._cond.notify_all()
        self._reader.join(self._worker.rpc_timeout)
        with self._cond:
            if self._call is not None:
                self._call.cancel()  # The server did not end it in time.
        self._reader.join()
        with self._cond:
            self._done = True
            self._cond.notify_all()
            give_back = leftovers + self._late + [
                ctx for op_id, ctx in released.items()
                if not _settled(self._results.pop(op_id, None))]
        self._ticker.join()
        for ctx in give_back:
            answer = self._unary.settle(ctx, _RELEASE)
            if answer.state == "error":
                _log.warning("ReleaseTask for %s: %s %s", ctx.task.id,
                             answer.code.name, answer.detail)

    # ---- Under _cond --------------------------------------------------------

    def _send_outcome(self, ctx, outcome):
        """Sends `outcome` for `ctx` if a stream is attached, and keeps it
        until its result comes (re-sent after a re-attach); returns its
        op_id."""
        op_id, self._next_op = self._next_op, self._next_op + 1
        message = kanban_pb2.WorkOutcome(
            op_id=op_id, task_id=ctx.task.id, lease_token=ctx.lease.token)
        if outcome.action == "complete":
            message.complete = outcome.detail
        elif outcome.action == "release":
            message.release = True
        else:
            message.fail.error = outcome.detail
            message.fail.retry = outcome.retry
        self._unanswered[op_id] = message
        if self._stream is not None:
            self._stream.send(kanban_pb2.WorkRequest(outcomes=[message]))
        return op_id

    def _await_result(self, op_id, ctx):
        """Waits for op `op_id`'s WorkResult and returns it; None when there
        is no stream and the lease of `ctx` has run out. Raises the error
        that ended streaming."""
        while op_id not in self._results:
            if self._error is not None or (
                    self._stream is None
                    and time.time() >= ctx.lease_expires_at):
                self._unanswered.pop(op_id, None)
                if self._error is not None:
                    raise self._error
                return None
            self._cond.wait(self._interval)
        return self._results.pop(op_id)

    def _drop(self, ctx):
        """Forgets the lease of `ctx`: no more heartbeats for it."""
        if self._held.get(ctx.task.id) is ctx:
            del self._held[ctx.task.id]
        if ctx in self._waiting:
            self._waiting.remove(ctx)

    def _held_leases(self):
        return [kanban_pb2.HeldLease(task_id=ctx.task.id,
                                     lease_token=ctx.lease.token)
                for ctx in self._held.values()]

    def _attach_request(self):
        """The first message of the next stream: the claim, a window of one
        beyond the leases held (listed, to be extended), and the stream to
        resume."""
        attach = kanban_pb2.WorkAttach(
            claim=self._worker._claim_request(),
            max_outstanding=1, resume_stream_id=self._stream_id)
        return kanban_pb2.WorkRequest(attach=attach,
                                      heartbeat=self._held_leases())

    def _on_response(self, stream, response):
        """Applies one WorkResponse of `stream`."""
        self._received = True
        if response.HasField("attached"):
            self._on_attached(stream, response.attached)
        for status in response.leases:
            ctx = self._held.get(status.task_id)
            if ctx is None or (status.lease_token
                               and status.lease_token != ctx.lease.token):
                continue  # Already settled or dropped.
            if _apply_lease_status(ctx, status):
                self._drop(ctx)
        if response.assignments:
            # Confirms delivery: a resumed stream does not send them again.
            stream.send(kanban_pb2.WorkRequest(
                received=[a.lease.token for a in response.assignments]))
        for assignment in response.assignments:
            self._on_assignment(assignment)
        for result in response.results:
            if self._unanswered.pop(result.op_id, None) is not None:
                self._results[result.op_id] = result
        if response.go_away:
            # The server reads nothing more of it: what is unanswered goes
            # out again on the next stream.
            _log.info("Work stream %s: the server is going away",
                      self._stream_id)
            if self._stream is stream:
                self._stream = None

    def _on_attached(self, stream, attached):
        self._stream_id = attached.stream_id
        interval = attached.heartbeat_interval.ToNanoseconds() / 1e9
        if interval > 0:
            self._interval = interval
        self._beat_due = time.monotonic() + self._interval
        self._stream = stream
        if attached.resumed:
            _log.info("Work stream %s resumed", attached.stream_id)
        if self._unanswered:  # Their results were lost with the last stream.
            stream.send(kanban_pb2.WorkRequest(
                outcomes=list(self._unanswered.values())))

    def _on_assignment(self, assignment):
        task, lease = assignment.task, assignment.lease
        known = self._held.get(task.id)
        if known is not None and known.lease.token == lease.token:
            return  # Sent again by a resumed stream: already here.
        ctx = TaskContext(self._worker, task, lease)
        self._held[task.id] = ctx
        (self._late if self._closing else self._waiting).append(ctx)

    def _ended(self, error):
        """Decides after a stream ended with `error` (None: OK): returns True
        to re-attach, else records why streaming is over."""
        if self._closing:
            return False
        code = grpc.StatusCode.OK if error is None else error.code()
        if code == grpc.StatusCode.UNIMPLEMENTED and not self._received:
            self._error = _StreamsUnimplemented()
            return False
        if code not in _STREAM_TRANSIENT and code != grpc.StatusCode.OK:
            self._error = error
            return False
        if error is not None:
            self._break = error
        _log.warning("Work stream %s ended (%s %s); re-attaching in %.3g s",
                     self._stream_id or "(not attached)", code.name,
                     error.details() if error is not None else "",
                     self._worker.retry_delay)
        return True

    # ---- The threads --------------------------------------------------------

    def _reader_thread(self):
        """Thread: runs _read_streams; should that fail, run() raises what
        it raised (rather than wait forever)."""
        try:
            self._read_streams()
        except BaseException as error:
            _log.exception("Work stream reader failed")
            with self._cond:
                self._error = error
                if self._call is not None:
                    self._call.cancel()
                self._cond.notify_all()

    def _read_streams(self):
        """Opens a stream, reads it to its end, and re-attaches after
        retry_delay until close() or an error that ends streaming."""
        while True:
            with self._cond:
                if self._closing:
                    return
                stream = self._call = _WorkStream(self._worker._work,
                                                  self._attach_request())
            error = self._read(stream)
            with self._cond:
                self._call = self._stream = None
                again = self._ended(error)
                self._cond.notify_all()
                if not again:
                    return
                self._cond.wait_for(lambda: self._closing,
                                    self._worker.retry_delay)

    def _read(self, stream):
        """Reads `stream` to its end, applying each response; returns the
        grpc.RpcError it ended with, or None."""
        try:
            for response in stream.call:
                with self._cond:
                    self._on_response(stream, response)
                    self._cond.notify_all()
        except grpc.RpcError as error:
            return error
        finally:
            stream.half_close()
        return None

    def _tick(self):
        """Thread: heartbeats every lease held (none: an empty heartbeat)
        every interval while a stream is attached; while none is, cancels
        the leases that ran out unrenewed. Ends after the reader."""
        with self._cond:
            while not self._done:
                now = time.monotonic()
                if self._stream is None:
                    self._expire_overdue()
                    self._cond.wait(self._interval)
                elif now >= self._beat_due:
                    self._stream.send(kanban_pb2.WorkRequest(
                        heartbeat=self._held_leases()))
                    self._beat_due = now + self._interval
                else:
                    self._cond.wait(self._beat_due - now)

    def _expire_overdue(self):
        now = time.time()
        for ctx in list(self._held.values()):
            if now >= ctx.lease_expires_at:
                ctx._lose("expired")
                self._drop(ctx)


def _answer_of(result):
    """The _Answer a WorkResult gives."""
    if result.state == kanban_pb2.WorkResult.DONE:
        return _DONE
    if result.state == kanban_pb2.WorkResult.LOST:
        return _Answer("lost", None, result.reason)
    return _Answer("error", _CODES.get(result.code, grpc.StatusCode.UNKNOWN),
                   result.message)


def _settled(result):
    """True when a WorkResult (or None) says the task is no longer ours."""
    return result is not None and _answer_of(result).state != "error"

