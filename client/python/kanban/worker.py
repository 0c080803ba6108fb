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

While the handler runs, a background thread heartbeats every third of the
lease; when the server answers LOST (an operator moved the task to BLOCKED or
ARCHIVED, the lease expired or was reclaimed) the context is cancelled.
"""

import collections
import logging
import os
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

# What a worker reports as it goes, to Worker(on_event=...). kind is one of
# "claimed", "completed", "failed" (detail: the error), "released", "lost"
# (detail: the reason; nothing was reported) and "error" (a call failed and
# is retried, or a report could not be delivered; detail: the status).
WorkerEvent = collections.namedtuple(
    "WorkerEvent", "kind task_id title attempt detail")


class Release(Exception):
    """Raised by a handler to give its task back (ReleaseTask)."""


class PermanentError(Exception):
    """Raised by a handler for a failure that retrying cannot fix
    (FailTask with retry=False: the task becomes BLOCKED)."""


def default_worker_id():
    """"hostname-pid" for this process."""
    return "%s-%d" % (socket.gethostname() or "worker", os.getpid())


def _seconds(timestamp):
    return timestamp.seconds + timestamp.nanos / 1e9


def _channel_of(channel_or_client):
    return getattr(channel_or_client, "channel", channel_or_client)


class TaskContext:
    """One claimed task, as the handler sees it; valid during the handler
    call. Thread-safe: the heartbeat thread updates it while the handler
    reads it.

    Attributes:
      task: the kanban_pb2.Task as ClaimTask returned it (status RUNNING).
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
        server's --max_claim_wait, 30 by default).
      rpc_timeout: deadline of every other call, added to claim_wait for
        ClaimTask.
      retry_delay: pause after a transient failure (UNAVAILABLE,
        DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED); a worker also never
        claims more often than once per retry_delay.
      on_event: called with a WorkerEvent on the thread running run(), never
        concurrently; may call stop(). Heartbeat failures are logged to the
        "kanban.worker" logger instead.
      token: a bearer token for this worker's calls (kanband --auth=token),
        typically a worker token whose worker_id is this worker_id; it wins
        over a token the channel already sends (connect(token=...)). None or
        "": whatever the channel sends. ValueError if metadata cannot carry it.
        Without a token, or with one that is unknown, revoked or not allowed
        to claim as worker_id, run() raises the claim's grpc.RpcError
        (UNAUTHENTICATED or PERMISSION_DENIED).

    Thread-safety: stop(), stopping and join() may be called from any thread
    and from signal handlers; run() from one thread at a time.
    """

    def __init__(self, channel, board="", worker_id=None, labels=(),
                 assignee="", lease=_DEFAULT_LEASE, claim_wait=30.0,
                 rpc_timeout=10.0, retry_delay=1.0, on_event=None,
                 token=None):
        if lease < 0 or claim_wait < 0 or rpc_timeout <= 0 or retry_delay < 0:
            raise ValueError("Worker: durations must not be negative, "
                             "rpc_timeout must be positive")
        channel = _channel_of(channel)
        if token:
            channel = with_token(channel, token)
        self._tasks = kanban_pb2_grpc.KanbanServiceStub(channel)
        self._heartbeats = kanban_pb2_grpc.HeartbeatServiceStub(channel)
        self.board = board
        self.worker_id = worker_id or default_worker_id()
        self.labels = list(labels)
        self.assignee = assignee
        self.lease = lease
        self.claim_wait = claim_wait
        self.rpc_timeout = rpc_timeout
        self.retry_delay = retry_delay
        self._on_event = on_event
        # Reentrant: stop() may run in a signal handler on a thread that
        # already holds the lock.
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._running = False
        self._claim = None  # The ClaimTask future in flight; stop() cancels it.
        self._thread = None
        self._thread_error = None

    # ---- Control ------------------------------------------------------------

    @property
    def stopping(self):
        return self._stop_event.is_set()

    def stop(self):
        """Asks run() to return: claims nothing new and cancels a waiting
        claim, but lets a running handler finish and reports its outcome.
        Returns at once; sticky."""
        with self._lock:
            self._stop_event.set()
            if self._claim is not None:
                self._claim.cancel()

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
        found nothing. Returns the number of tasks claimed.

        Raises grpc.RpcError when ClaimTask fails with a non-transient code
        (NOT_FOUND board, INVALID_ARGUMENT, ...); transient failures are
        retried after retry_delay. RuntimeError if run() is already running.
        """
        with self._lock:
            if self._running:
                raise RuntimeError("Worker.run is already running")
            self._running = True
        processed = 0
        try:
            while not max_tasks or processed < max_tasks:
                if self.stopping:
                    break
                started = time.monotonic()
                try:
                    claimed = self._claim_one()
                except grpc.RpcError as error:
                    if error.code() not in _TRANSIENT:
                        raise
                    self._emit("error", None, "ClaimTask: %s %s" % (
                        error.code().name, error.details()))
                    self._stop_event.wait(self.retry_delay)
                    continue
                if claimed is None:
                    if self.stopping or exit_when_idle:
                        break
                    # A short claim_wait (or a server answering early) must
                    # not turn into a busy poll.
                    rest = self.retry_delay - (time.monotonic() - started)
                    if rest > 0:
                        self._stop_event.wait(rest)
                    continue
                processed += 1
                self._process(claimed, handler)
        finally:
            with self._lock:
                self._running = False
        return processed

    def _claim_one(self):
        """A TaskContext, or None when nothing was claimable or stop() cut
        the wait short."""
        request = kanban_pb2.ClaimTaskRequest(
            board=self.board, worker_id=self.worker_id, labels=self.labels,
            assignee=self.assignee)
        if self.lease > 0:
            request.lease_duration.FromNanoseconds(int(self.lease * 1e9))
        request.wait.FromNanoseconds(int(self.claim_wait * 1e9))
        with self._lock:
            if self.stopping:
                return None
            future = self._tasks.ClaimTask.future(
                request, timeout=self.claim_wait + self.rpc_timeout)
            self._claim = future
            # A stop() in a signal handler between the check above and the
            # assignment did not see this call; cancel it here.
            if self.stopping:
                future.cancel()
        try:
            # A cancel that crosses the answer leaves the future done with
            # the task: it is processed then, not lost until lease expiry.
            response = future.result()
        except grpc.FutureCancelledError:
            return None
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED and self.stopping:
                return None
            raise
        finally:
            with self._lock:
                self._claim = None
        if not response.HasField("task"):
            return None
        return TaskContext(self, response.task, response.lease)

    def _process(self, ctx, handler):
        self._emit("claimed", ctx.task, "")
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(ctx, done),
                                name="kanban-heartbeat", daemon=True)
        beat.start()
        try:
            result = handler(ctx)
        except Release:
            outcome = ("release", None, "")
        except PermanentError as error:
            outcome = ("fail", False, _error_text(error))
        except Exception as error:  # The handler's failure, reported.
            _log.debug("handler failed on %s", ctx.task.id, exc_info=True)
            outcome = ("fail", True, _error_text(error))
        except BaseException:
            done.set()
            beat.join()
            self._report(ctx, ("release", None, ""))
            raise
        else:
            outcome = ("complete", None,
                       "" if result is None else
                       result if isinstance(result, str) else str(result))
        done.set()
        beat.join()
        self._report(ctx, outcome)

    def _heartbeat(self, ctx, done):
        """Heartbeats every third of the lease until `done`, cancelling `ctx`
        when the server says the lease is LOST or it runs out unrenewed."""
        lease = ctx.lease.duration.ToNanoseconds() / 1e9
        if lease <= 0:
            lease = self.lease if self.lease > 0 else _DEFAULT_LEASE
        request = kanban_pb2.HeartbeatRequest(
            worker_id=self.worker_id,
            leases=[kanban_pb2.HeldLease(task_id=ctx.task.id,
                                         lease_token=ctx.lease.token)])
        while not done.wait(lease / 3):
            if ctx.cancelled:
                return  # A lost lease needs no more heartbeats.
            expires_at = ctx.lease_expires_at
            # An answer after the lease ran out would be of no use.
            timeout = max(min(self.rpc_timeout, expires_at - time.time()), 0.001)
            try:
                response = self._heartbeats.Heartbeat(request, timeout=timeout)
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
            status = response.leases[0]
            if status.state == kanban_pb2.LeaseStatus.EXTENDED:
                ctx._extend(_seconds(status.expires_at))
            else:
                ctx._lose(status.reason)

    def _report(self, ctx, outcome):
        action, retry, detail = outcome
        task, token = ctx.task, ctx.lease.token
        if action == "complete":
            kind, call = "completed", self._tasks.CompleteTask
            request = kanban_pb2.CompleteTaskRequest(
                task_id=task.id, lease_token=token, result=detail)
            detail = ""
        elif action == "release":
            kind, call = "released", self._tasks.ReleaseTask
            request = kanban_pb2.ReleaseTaskRequest(
                task_id=task.id, lease_token=token)
        else:
            kind, call = "failed", self._tasks.FailTask
            request = kanban_pb2.FailTaskRequest(
                task_id=task.id, lease_token=token, error=detail, retry=retry)
        while True:
            if ctx.cancelled:
                self._emit("lost", task, ctx.cancel_reason)
                return
            try:
                call(request, timeout=self.rpc_timeout)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    details = error.details() or ""
                    if details.startswith(_LEASE_LOST_PREFIX):
                        details = details[len(_LEASE_LOST_PREFIX):]
                    ctx._lose(details)
                    continue
                self._emit("error", task, "reporting %s: %s %s" % (
                    kind, error.code().name, error.details()))
                # The server would refuse once the lease is over. stop()
                # does not cut this short: a draining worker still reports.
                if (error.code() not in _TRANSIENT
                        or time.time() >= ctx.lease_expires_at):
                    return
                time.sleep(self.retry_delay)
                continue
            self._emit(kind, task, detail)
            return

    def _emit(self, kind, task, detail):
        if self._on_event is None:
            return
        if task is None:
            event = WorkerEvent(kind, "", "", 0, detail)
        else:
            event = WorkerEvent(kind, task.id, task.title, task.attempt, detail)
        self._on_event(event)


def _error_text(error):
    return str(error) or type(error).__name__
