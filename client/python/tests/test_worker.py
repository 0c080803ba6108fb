"""kanban.Worker and connect() against a real kanband.

WorkerTest runs the worker's cases on worker streams (the default), and its
subclasses run them again on the unary calls: UnaryWorkerTest with
streams=False, FallbackWorkerTest against a kanband without streams
(--worker_streams=false), where the default worker falls back.
test_worker_stream.py has the cases only streams have.
"""

import threading
import unittest

import grpc

from kanband_process import Kanband, WAIT_TIMEOUT, wait_for

import kanban
from kanban.v1 import kanban_pb2 as pb
from grpc_health.v1 import health_pb2


class WorkerTest(unittest.TestCase):
    """The worker's cases, on worker streams."""

    SERVER_FLAGS = ()
    WORKER_OPTIONS = {}
    # The RPCs the worker makes here, (method, code), and the methods it
    # must not call.
    USES = {("WorkerService/Work", "OK")}
    AVOIDS = {"KanbanService/ClaimTask", "KanbanService/CompleteTask",
              "HeartbeatService/Heartbeat"}

    @classmethod
    def setUpClass(cls):
        # Short retry backoff, so a failed attempt is claimable again soon.
        cls.server = Kanband("--backoff_base=50ms", "--backoff_cap=100ms",
                             "--sweep_interval=100ms", "--log_rpcs",
                             *cls.SERVER_FLAGS).start()
        cls.client = kanban.connect(cls.server.address)
        cls.client.wait_ready(WAIT_TIMEOUT)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        code = cls.server.stop()
        cls.server.close()
        assert code == 0, "kanband exited with %s" % code

    def setUp(self):
        # One board per test, so workers only see this test's tasks.
        self.board = self.id().rsplit(".", 1)[-1].lower().replace("test_", "")[:60]
        self.client.kanban.CreateBoard(pb.CreateBoardRequest(name=self.board))
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
        options = dict(self.WORKER_OPTIONS, **options)
        return kanban.Worker(self.client, board=self.board,
                             worker_id="py-" + self.board,
                             on_event=self.events.append, **options)

    def kinds(self):
        return [event.kind for event in self.events]

    def test_completes_with_the_handlers_result(self):
        task = self.create("compute", body="21")
        seen = []

        def handle(ctx):
            seen.append((ctx.task.id, ctx.task.status, ctx.lease.task_id))
            return str(int(ctx.task.body) * 2)

        with self.worker() as worker:
            self.assertEqual(worker.run(handle, max_tasks=1), 1)
        self.assertEqual(seen, [(task.id, pb.RUNNING, task.id)])
        done = self.get(task)
        self.assertEqual(done.status, pb.DONE)
        self.assertEqual(done.result, "42")
        self.assertEqual(self.kinds(), ["claimed", "completed"])

    def test_exception_fails_with_retry_then_next_attempt_completes(self):
        task = self.create("flaky")

        def handle(ctx):
            if ctx.task.attempt == 1:
                raise RuntimeError("boom on attempt 1")
            return "ok on attempt %d" % ctx.task.attempt

        with self.worker() as worker:
            worker.run(handle, max_tasks=2)
        done = self.get(task)
        self.assertEqual(done.status, pb.DONE)
        self.assertEqual(done.attempt, 2)
        self.assertEqual(done.result, "ok on attempt 2")
        self.assertEqual(self.kinds(), ["claimed", "failed", "claimed", "completed"])
        self.assertEqual(self.events[1].detail, "boom on attempt 1")

    def test_permanent_error_blocks_the_task(self):
        task = self.create("hopeless")

        def handle(ctx):
            raise kanban.PermanentError("input is malformed")

        with self.worker() as worker:
            worker.run(handle, max_tasks=1)
        blocked = self.get(task)
        self.assertEqual(blocked.status, pb.BLOCKED)
        self.assertEqual(blocked.last_error, "input is malformed")

    def test_release_gives_the_task_back(self):
        task = self.create("not now")

        def handle(ctx):
            raise kanban.Release()

        with self.worker() as worker:
            worker.run(handle, max_tasks=1)
        released = self.get(task)
        self.assertEqual(released.status, pb.READY)
        self.assertEqual(self.kinds(), ["claimed", "released"])

    def test_heartbeats_extend_the_lease(self):
        task = self.create("long")

        def handle(ctx):
            first = ctx.lease_expires_at
            # A heartbeat comes every third of the lease and moves the expiry.
            wait_for(lambda: ctx.lease_expires_at > first, what="a heartbeat")
            self.assertFalse(ctx.cancelled)
            return "still mine"

        with self.worker(lease=1.5) as worker:
            worker.run(handle, max_tasks=1)
        self.assertEqual(self.get(task).status, pb.DONE)
        self.assertEqual(self.kinds(), ["claimed", "completed"])

    def test_lost_lease_cancels_the_handler_and_reports_nothing(self):
        task = self.create("to be cancelled")
        started = threading.Event()
        seen = {}

        def handle(ctx):
            started.set()
            seen["cancelled"] = ctx.wait_cancelled(WAIT_TIMEOUT)
            seen["reason"] = ctx.cancel_reason
            return "must not be reported"

        with self.worker(lease=1.5) as worker:
            worker.start(handle, max_tasks=1)
            self.assertTrue(started.wait(WAIT_TIMEOUT))
            # An operator stops the work: this cancels the lease, and the
            # next heartbeat answers LOST/cancelled.
            self.client.kanban.MoveTask(pb.MoveTaskRequest(
                task_id=task.id, to_status=pb.BLOCKED, reason="operator"),
                timeout=10)
            self.assertTrue(worker.join(WAIT_TIMEOUT))
        self.assertEqual(seen, {"cancelled": True, "reason": "cancelled"})
        self.assertEqual(self.kinds(), ["claimed", "lost"])
        self.assertEqual(self.events[1].detail, "cancelled")
        blocked = self.get(task)
        self.assertEqual(blocked.status, pb.BLOCKED)
        self.assertEqual(blocked.result, "")

    def test_stop_drains_the_current_task_and_claims_no_more(self):
        first = self.create("first", priority=2)
        second = self.create("second", priority=1)
        started, proceed = threading.Event(), threading.Event()

        def handle(ctx):
            started.set()
            proceed.wait(WAIT_TIMEOUT)
            return "finished while stopping=%s" % ctx.stopping

        worker = self.worker()
        worker.start(handle)
        self.assertTrue(started.wait(WAIT_TIMEOUT))
        worker.stop()
        proceed.set()
        self.assertTrue(worker.join(WAIT_TIMEOUT))
        self.assertEqual(self.get(first).result, "finished while stopping=True")
        self.assertEqual(self.get(second).status, pb.READY)

    def waiting(self, worker):
        """White box: true once `worker` waits for a task on the server (a
        ClaimTask parked, or an attached stream)."""
        path = worker._path
        return path is not None and (getattr(path, "_claim", None) is not None
                                     or getattr(path, "_stream", None) is not None)

    def test_uses_the_expected_calls(self):
        task = self.create("which calls")
        before = len(self.server.rpcs())
        with self.worker() as worker:
            self.assertEqual(worker.run(lambda ctx: "ok", max_tasks=1), 1)
        self.assertEqual(self.get(task).status, pb.DONE)
        # A stream is logged when it ends, which may be just after run().
        wait_for(lambda: self.USES <= set(self.server.rpcs()[before:]),
                 what="%s in the server's log" % sorted(self.USES))
        self.assertFalse({method for method, _ in self.server.rpcs()[before:]}
                         & self.AVOIDS, self.server.rpcs()[before:])

    def test_stop_cuts_a_waiting_claim_short(self):
        worker = self.worker(claim_wait=30.0)
        worker.start(lambda ctx: "unused")
        # Nothing to claim: the worker waits on the server.
        wait_for(lambda: self.waiting(worker), what="a waiting claim")
        worker.stop()
        # Well before the 30 s wait would end by itself.
        self.assertTrue(worker.join(15))
        self.assertEqual(self.kinds(), [])

    def test_claim_on_a_missing_board_raises_not_found(self):
        worker = kanban.Worker(self.client, board="no-such-board", claim_wait=0,
                               **self.WORKER_OPTIONS)
        with self.assertRaises(grpc.RpcError) as raised:
            worker.run(lambda ctx: "unused")
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_errors_come_out_as_rpc_errors_with_their_codes(self):
        calls = [
            (grpc.StatusCode.INVALID_ARGUMENT,
             lambda: self.create("")),
            (grpc.StatusCode.NOT_FOUND,
             lambda: self.client.kanban.GetTask(pb.GetTaskRequest(task_id="nope"))),
            (grpc.StatusCode.ALREADY_EXISTS,
             lambda: self.client.kanban.CreateBoard(
                 pb.CreateBoardRequest(name=self.board))),
        ]
        done = self.create("finished")
        self.client.kanban.MoveTask(pb.MoveTaskRequest(task_id=done.id,
                                                       to_status=pb.DONE))
        calls.append((grpc.StatusCode.FAILED_PRECONDITION,
                      lambda: self.client.kanban.MoveTask(pb.MoveTaskRequest(
                          task_id=done.id, to_status=pb.BLOCKED))))
        for code, call in calls:
            with self.subTest(code=code):
                with self.assertRaises(grpc.RpcError) as raised:
                    call()
                self.assertEqual(raised.exception.code(), code)
                self.assertTrue(raised.exception.details())
        with self.assertRaises(grpc.RpcError) as raised:
            self.create("")
        self.assertIn("title", raised.exception.details())

    def test_health_and_heartbeat_stubs(self):
        reply = self.client.health.Check(health_pb2.HealthCheckRequest(),
                                         timeout=10)
        self.assertEqual(reply.status, health_pb2.HealthCheckResponse.SERVING)
        task = self.create("listed")
        seen = {}

        def handle(ctx):
            workers = self.client.heartbeats.ListWorkers(
                pb.ListWorkersRequest(board=self.board), timeout=10).workers
            seen["workers"] = {w.worker_id: list(w.task_ids) for w in workers}
            return ""

        with self.worker() as worker:
            worker.run(handle, max_tasks=1)
        self.assertEqual(seen["workers"], {"py-" + self.board: [task.id]})


class UnaryWorkerTest(WorkerTest):
    """The same cases on the unary calls: streams=False."""

    WORKER_OPTIONS = {"streams": False}
    USES = {("KanbanService/ClaimTask", "OK"),
            ("KanbanService/CompleteTask", "OK")}
    AVOIDS = {"WorkerService/Work"}


class FallbackWorkerTest(WorkerTest):
    """The same cases against a kanband without worker streams: Work answers
    UNIMPLEMENTED and the default worker falls back to the unary calls."""

    SERVER_FLAGS = ("--worker_streams=false",)
    USES = {("WorkerService/Work", "UNIMPLEMENTED"),
            ("KanbanService/ClaimTask", "OK"),
            ("KanbanService/CompleteTask", "OK")}
    AVOIDS = set()


if __name__ == "__main__":
    unittest.main()
