"""kanban.Worker on worker streams (WorkerService.Work) against a real
kanband: what only a stream does. The handler contract on streams, and the
fallback to the unary calls, are test_worker.py's (WorkerTest and
FallbackWorkerTest)."""

import signal
import threading
import time
import unittest

from kanband_process import Kanband, WAIT_TIMEOUT, wait_for

import kanban
from kanban.v1 import kanban_pb2 as pb

# The unary calls a stream replaces.
UNARY = {"KanbanService/ClaimTask", "KanbanService/CompleteTask",
         "KanbanService/FailTask", "KanbanService/ReleaseTask",
         "HeartbeatService/Heartbeat"}


class _Board:
    """A test's board on `self.server`, its tasks and a worker's events."""

    def make_board(self, client):
        self.client = client
        self.board = self.id().rsplit(".", 1)[-1].lower().replace("test_", "")[:60]
        self.client.kanban.CreateBoard(pb.CreateBoardRequest(name=self.board),
                                       timeout=10)
        self.events = []

    def create(self, title="task", **fields):
        return self.client.kanban.CreateTask(
            pb.CreateTaskRequest(board=self.board, title=title, **fields),
            timeout=10)

    def get(self, task):
        return self.client.kanban.GetTask(pb.GetTaskRequest(task_id=task.id),
                                          timeout=10)

    def worker(self, **options):
        options.setdefault("lease", 10.0)
        options.setdefault("claim_wait", 5.0)
        options.setdefault("retry_delay", 0.2)
        return kanban.Worker(self.client, board=self.board,
                             worker_id="py-" + self.board,
                             on_event=self.events.append, **options)

    def kinds(self, errors=False):
        return [event.kind for event in self.events
                if errors or event.kind != "error"]

    def methods(self, since=0):
        return {method for method, _ in self.server.rpcs()[since:]}


class StreamTest(_Board, unittest.TestCase):
    """One kanband for every case (a board each)."""

    @classmethod
    def setUpClass(cls):
        cls.server = Kanband("--backoff_base=50ms", "--backoff_cap=100ms",
                             "--sweep_interval=100ms", "--log_rpcs").start()
        cls.shared = kanban.connect(cls.server.address)
        cls.shared.wait_ready(WAIT_TIMEOUT)

    @classmethod
    def tearDownClass(cls):
        cls.shared.close()
        code = cls.server.stop()
        cls.server.close()
        assert code == 0, "kanband exited with %s" % code

    def setUp(self):
        self.make_board(self.shared)

    def test_processes_tasks_over_one_stream(self):
        tasks = [self.create("t%d" % i, body=str(i)) for i in range(6)]
        calls = []
        before = len(self.server.rpcs())

        def handle(ctx):
            calls.append(ctx.task.id)
            return "twice " + str(2 * int(ctx.task.body))

        with self.worker(claim_wait=1.0) as worker:
            self.assertEqual(worker.run(handle, exit_when_idle=True), 6)
        self.assertEqual(sorted(calls), sorted(t.id for t in tasks))
        for task in tasks:
            done = self.get(task)
            self.assertEqual((done.status, done.attempt, done.result),
                             (pb.DONE, 1, "twice %d" % (2 * int(task.body))))
        self.assertEqual(self.kinds(errors=True), ["claimed", "completed"] * 6)
        # One stream, which ended when the worker half-closed it; no unary
        # call of the worker's.
        wait_for(lambda: ("WorkerService/Work", "OK") in
                 self.server.rpcs()[before:], what="the stream's end")
        rpcs = self.server.rpcs()[before:]
        self.assertEqual([r for r in rpcs if r[0] == "WorkerService/Work"],
                         [("WorkerService/Work", "OK")])
        self.assertFalse(self.methods(before) & UNARY, rpcs)

    def test_failures_fail_the_task_as_fail_task_does(self):
        flaky = self.create("flaky", priority=2)
        hopeless = self.create("hopeless", priority=1)

        def handle(ctx):
            if ctx.task.id == hopeless.id:
                raise kanban.PermanentError("input is malformed")
            if ctx.task.attempt == 1:
                raise RuntimeError("boom on attempt 1")
            return "ok on attempt %d" % ctx.task.attempt

        # The retry is claimable after a backoff of at most 100 ms.
        with self.worker(claim_wait=1.0) as worker:
            self.assertEqual(worker.run(handle, exit_when_idle=True), 3)
        blocked, done = self.get(hopeless), self.get(flaky)
        self.assertEqual((blocked.status, blocked.last_error),
                         (pb.BLOCKED, "input is malformed"))
        self.assertEqual((done.status, done.attempt, done.result),
                         (pb.DONE, 2, "ok on attempt 2"))
        self.assertEqual(
            [(e.kind, e.task_id, e.detail) for e in self.events],
            [("claimed", flaky.id, ""), ("failed", flaky.id, "boom on attempt 1"),
             ("claimed", hopeless.id, ""),
             ("failed", hopeless.id, "input is malformed"),
             ("claimed", flaky.id, ""), ("completed", flaky.id, "")])

    def test_operator_move_cancels_the_handler_at_once(self):
        task = self.create("to be cancelled")
        started = threading.Event()
        seen = {}

        def handle(ctx):
            started.set()
            seen["cancelled"] = ctx.wait_cancelled(WAIT_TIMEOUT)
            seen["reason"] = ctx.cancel_reason
            return "must not be reported"

        # Heartbeats every 10 s: a cancellation seen sooner was pushed.
        with self.worker(lease=30.0) as worker:
            worker.start(handle, max_tasks=1)
            self.assertTrue(started.wait(WAIT_TIMEOUT))
            moved = time.monotonic()
            self.client.kanban.MoveTask(pb.MoveTaskRequest(
                task_id=task.id, to_status=pb.BLOCKED, reason="operator"),
                timeout=10)
            self.assertTrue(worker.join(WAIT_TIMEOUT))
        self.assertLess(time.monotonic() - moved, 5.0)
        self.assertEqual(seen, {"cancelled": True, "reason": "cancelled"})
        self.assertEqual(self.kinds(errors=True), ["claimed", "lost"])
        self.assertEqual(self.events[1].detail, "cancelled")
        blocked = self.get(task)
        self.assertEqual((blocked.status, blocked.result), (pb.BLOCKED, ""))

    def test_idle_stream_heartbeats_and_stays_open(self):
        before = len(self.server.rpcs())
        started = threading.Event()
        # A 1 s lease: heartbeats every 1/3 s; a stream silent for 2/3 s is
        # ended by the server.
        with self.worker(lease=1.0, claim_wait=30.0) as worker:
            worker.start(lambda ctx: started.set() or "late work", max_tasks=1)
            wait_for(lambda: worker._path is not None
                     and worker._path._stream is not None, what="attached")
            time.sleep(1.5)  # Idle: nothing to claim.
            task = self.create("after a while")
            self.assertTrue(started.wait(WAIT_TIMEOUT))
            self.assertTrue(worker.join(WAIT_TIMEOUT))
        self.assertEqual(self.get(task).status, pb.DONE)
        self.assertEqual(self.kinds(errors=True), ["claimed", "completed"])
        wait_for(lambda: ("WorkerService/Work", "OK") in
                 self.server.rpcs()[before:], what="the stream's end")
        works = [r for r in self.server.rpcs()[before:]
                 if r[0] == "WorkerService/Work"]
        self.assertEqual(works, [("WorkerService/Work", "OK")])

    def test_gives_back_a_pushed_task_it_will_not_run(self):
        first = self.create("first", priority=2)
        second = self.create("second", priority=1)
        started = threading.Event()
        before = len(self.server.rpcs())

        def handle(ctx):
            started.set()
            ctx.wait_cancelled(WAIT_TIMEOUT)
            # The lost lease made room in the window: the server pushed the
            # next task to this worker, which holds it while this runs
            # (white box: it waits in the stream's queue).
            wait_for(lambda: [c.task.id for c in worker._path._waiting]
                     == [second.id], what="the next task pushed")
            return "dropped"

        with self.worker(lease=30.0) as worker:
            worker.start(handle, max_tasks=1)
            self.assertTrue(started.wait(WAIT_TIMEOUT))
            self.client.kanban.MoveTask(pb.MoveTaskRequest(
                task_id=first.id, to_status=pb.BLOCKED), timeout=10)
            self.assertTrue(worker.join(WAIT_TIMEOUT))
        # max_tasks reached: `second` was given back (a release outcome on
        # the stream), not left RUNNING until its lease expired.
        self.assertEqual(self.get(second).status, pb.READY)
        self.assertEqual(self.kinds(errors=True), ["claimed", "lost"])
        # The release made room in the window, so the server may claim
        # `second` again and push it after the worker half-closed: then it
        # is given back with ReleaseTask.
        wait_for(lambda: ("WorkerService/Work", "OK") in
                 self.server.rpcs()[before:], what="the stream's end")
        self.assertFalse(self.methods(before) & UNARY
                         - {"KanbanService/ReleaseTask"},
                         self.server.rpcs()[before:])

    def test_stop_while_idle_ends_the_stream_at_once(self):
        before = len(self.server.rpcs())
        worker = self.worker(claim_wait=30.0)
        worker.start(lambda ctx: "unused")
        wait_for(lambda: worker._path is not None
                 and worker._path._stream is not None, what="attached")
        stopped = time.monotonic()
        worker.stop()
        self.assertTrue(worker.join(WAIT_TIMEOUT))
        self.assertLess(time.monotonic() - stopped, 5.0)
        # Half-closed by the worker: the server ended it with OK.
        wait_for(lambda: ("WorkerService/Work", "OK") in
                 self.server.rpcs()[before:], what="the stream's end")
        self.assertEqual(self.kinds(errors=True), [])


class ResumeTest(_Board, unittest.TestCase):
    """A kanband per case, restarted on its database while a handler runs:
    the worker re-attaches, resuming its stream with the lease it holds,
    and the task completes exactly once."""

    def setUp(self):
        self.server = Kanband("--log_rpcs").start()
        self.addCleanup(self.server.close)
        client = kanban.connect(self.server.address)
        self.addCleanup(client.close)
        client.wait_ready(WAIT_TIMEOUT)
        self.make_board(client)

    def restart_mid_task(self, sig):
        task = self.create("survives a restart")
        started, finish = threading.Event(), threading.Event()
        contexts = []

        def handle(ctx):
            contexts.append(ctx)
            started.set()
            finish.wait(WAIT_TIMEOUT)
            return "done once"

        # Ample lease: reconnecting to a kanband restarted on the same port
        # can take gRPC a few seconds (a SYN answered by the old
        # connection's TIME_WAIT is retried after 1 s).
        with self.worker(lease=15.0) as worker:
            worker.start(handle, max_tasks=1)
            self.assertTrue(started.wait(WAIT_TIMEOUT))
            ctx = contexts[0]
            expiry = ctx.lease_expires_at
            self.server.restart(sig)
            # The new kanband extends the lease: the re-attach listed it...
            wait_for(lambda: ctx.lease_expires_at > expiry,
                     what="the lease extended after the restart")
            self.assertFalse(ctx.cancelled)
            # ... and counts it in the window: nothing else is pushed.
            other = self.create("waits for the window")
            time.sleep(0.5)
            self.assertEqual(self.get(other).status, pb.READY)
            finish.set()
            self.assertTrue(worker.join(WAIT_TIMEOUT))
        done = self.get(task)
        self.assertEqual((done.status, done.attempt, done.result),
                         (pb.DONE, 1, "done once"))
        self.assertEqual(len(contexts), 1)
        self.assertEqual(self.kinds(), ["claimed", "completed"])
        self.assertEqual(self.get(other).status, pb.READY)  # Given back.
        # The new kanband heard from the worker on a stream only (but for a
        # ReleaseTask of `other`, if it was pushed after the half-close).
        wait_for(lambda: ("WorkerService/Work", "OK") in self.server.rpcs(),
                 what="the resumed stream's end")
        self.assertFalse(self.methods() & UNARY - {"KanbanService/ReleaseTask"},
                         self.server.rpcs())

    def test_sends_an_outcome_again_after_a_break(self):
        task = self.create("reported twice, done once")
        started, finish = threading.Event(), threading.Event()

        def handle(ctx):
            started.set()
            finish.wait(WAIT_TIMEOUT)
            return "done once"

        with self.worker(lease=15.0) as worker:
            worker.start(handle, max_tasks=1)
            self.assertTrue(started.wait(WAIT_TIMEOUT))
            # Frozen, the server reads nothing: the outcome sent now is lost
            # with the connection when it is killed.
            self.server.process.send_signal(signal.SIGSTOP)
            finish.set()
            # White box: the outcome went out and awaits its result.
            wait_for(lambda: worker._path._unanswered, what="the outcome sent")
            time.sleep(0.2)
            self.server.restart(signal.SIGKILL)
            self.assertTrue(worker.join(WAIT_TIMEOUT))
        done = self.get(task)
        self.assertEqual((done.status, done.attempt, done.result),
                         (pb.DONE, 1, "done once"))
        self.assertEqual(self.kinds(), ["claimed", "completed"])

    def test_resumes_after_the_server_is_killed(self):
        self.restart_mid_task(signal.SIGKILL)

    def test_resumes_after_go_away(self):
        # SIGTERM: the server sends go_away, then ends the stream.
        self.restart_mid_task(signal.SIGTERM)


if __name__ == "__main__":
    unittest.main()
