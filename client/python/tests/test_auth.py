"""Bearer tokens against a real kanband run with --auth=token: connect()
with token= or $KANBAN_TOKEN, Worker and Watcher with token=, the examples
with --token, and calls without a token refused."""

import json
import os
import re
import subprocess
import unittest
from unittest import mock

import grpc

from kanband_process import (EventPuller, Kanband, WAIT_TIMEOUT, example,
                             kanband_path)

import kanban
from kanban.v1 import kanban_pb2 as pb
from grpc_health.v1 import health_pb2

_SECRET = re.compile(r"^kb_[A-Za-z0-9_-]{43}$")


def make_token_offline(server, *flags):
    """`kanband token create --db=... FLAGS`: the secret it prints alone."""
    done = subprocess.run(
        [kanband_path(), "token", "create", "--db=" + server.db] + list(flags),
        capture_output=True, text=True, timeout=WAIT_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError("kanband token create exited with %d: %s" % (
            done.returncode, done.stderr))
    lines = done.stdout.splitlines()
    if len(lines) != 1 or not _SECRET.match(lines[0]):
        raise RuntimeError("kanband token create printed %r" % done.stdout)
    return lines[0]


class AuthTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Kanband("--auth=token")
        cls.admin_token = make_token_offline(cls.server, "--name=root",
                                             "--role=admin")
        cls.server.start()
        cls.admin = kanban.connect(cls.server.address, token=cls.admin_token)
        cls.admin.wait_ready(WAIT_TIMEOUT)

    @classmethod
    def tearDownClass(cls):
        cls.admin.close()
        code = cls.server.stop()
        cls.server.close()
        assert code == 0, "kanband exited with %s" % code

    def setUp(self):
        # One board per test, so workers and watchers see only its tasks.
        self.board = self.id().rsplit(".", 1)[-1].lower().replace("test_", "")[:60]
        self.admin.kanban.CreateBoard(pb.CreateBoardRequest(name=self.board),
                                      timeout=10)
        # Neither connect() nor the examples may pick up a token from the
        # environment the tests run in.
        patcher = mock.patch.dict(os.environ)
        patcher.start()
        self.addCleanup(patcher.stop)
        os.environ.pop(kanban.TOKEN_ENV, None)

    def connect(self, **kwargs):
        client = kanban.connect(self.server.address, **kwargs)
        self.addCleanup(client.close)
        return client

    def create_token(self, name, role, **fields):
        response = self.admin.admin.CreateToken(
            pb.CreateTokenRequest(name=name, role=role, **fields), timeout=10)
        self.assertRegex(response.secret, _SECRET)
        return response.secret

    def create_task(self, title):
        return self.admin.kanban.CreateTask(
            pb.CreateTaskRequest(board=self.board, title=title), timeout=10)

    def assertCode(self, code, call, *args, **kwargs):
        with self.assertRaises(grpc.RpcError) as caught:
            call(*args, **kwargs)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        return caught.exception

    def test_calls_without_a_token_are_unauthenticated(self):
        anonymous = self.connect()
        self.assertCode(grpc.StatusCode.UNAUTHENTICATED,
                        anonymous.kanban.ListBoards, pb.ListBoardsRequest(),
                        timeout=10)
        # Health needs no token.
        self.assertEqual(anonymous.health.Check(
            health_pb2.HealthCheckRequest(), timeout=10).status,
            health_pb2.HealthCheckResponse.SERVING)

        self.create_task("nobody may claim me")
        worker = kanban.Worker(anonymous, board=self.board, worker_id="anon",
                               claim_wait=1.0)
        self.assertCode(grpc.StatusCode.UNAUTHENTICATED, worker.run,
                        lambda ctx: "never", max_tasks=1)

        watcher = kanban.Watcher(anonymous, board=self.board, after_seq=0)
        self.addCleanup(watcher.close)
        self.assertCode(grpc.StatusCode.UNAUTHENTICATED, next, iter(watcher))

        # A secret the server never made is refused the same way, and is
        # not echoed back.
        unknown = "kb_" + "A" * 43
        error = self.assertCode(
            grpc.StatusCode.UNAUTHENTICATED,
            self.connect(token=unknown).kanban.ListBoards,
            pb.ListBoardsRequest(), timeout=10)
        self.assertNotIn(unknown, error.details())

    def test_connect_takes_the_token_from_the_environment(self):
        os.environ[kanban.TOKEN_ENV] = self.admin_token + "\n"
        boards = self.connect().kanban.ListBoards(pb.ListBoardsRequest(),
                                                  timeout=10)
        self.assertIn(self.board, [b.name for b in boards.boards])
        # An explicit token wins; "" sends none.
        self.assertCode(grpc.StatusCode.UNAUTHENTICATED,
                        self.connect(token="").kanban.ListBoards,
                        pb.ListBoardsRequest(), timeout=10)
        self.assertCode(grpc.StatusCode.UNAUTHENTICATED,
                        self.connect(token="kb_" + "B" * 43).kanban.ListBoards,
                        pb.ListBoardsRequest(), timeout=10)

    def test_a_token_metadata_cannot_carry_is_a_value_error(self):
        with self.assertRaises(ValueError) as caught:
            kanban.connect(self.server.address, token="kb_with space")
        self.assertNotIn("with space", str(caught.exception))
        with self.assertRaises(ValueError):
            kanban.Worker(self.admin, token="kb_line\nbreak")

    def test_worker_with_a_worker_token(self):
        worker_token = self.create_token(
            "py-" + self.board, pb.ROLE_WORKER, worker_id="py-w1")
        task = self.create_task("work me")
        anonymous = self.connect()

        # As another worker id: refused for good.
        other = kanban.Worker(anonymous, board=self.board, worker_id="py-w2",
                              claim_wait=1.0, token=worker_token)
        self.assertCode(grpc.StatusCode.PERMISSION_DENIED, other.run,
                        lambda ctx: "never", max_tasks=1)

        # As itself, over a channel that sends the admin token: the
        # Worker's own token wins.
        events = []
        worker = kanban.Worker(self.admin, board=self.board, worker_id="py-w1",
                               lease=3.0, claim_wait=5.0, token=worker_token,
                               on_event=events.append)

        def handle(ctx):
            ctx.wait_cancelled(1.5)  # Past a heartbeat (every third of 3 s).
            return "done as " + ctx.lease.worker_id

        self.assertEqual(worker.run(handle, max_tasks=1), 1)
        self.assertEqual([e.kind for e in events], ["claimed", "completed"])
        got = self.admin.kanban.GetTask(pb.GetTaskRequest(task_id=task.id),
                                        timeout=10)
        self.assertEqual((got.status, got.result), (pb.DONE, "done as py-w1"))

        # The feed names who did what.
        watcher = kanban.Watcher(self.admin, board=self.board, after_seq=0,
                                 kinds=["created", "claimed", "completed"])
        self.addCleanup(watcher.close)
        seen = [(e.kind, e.principal) for e in EventPuller(watcher).take(3)]
        self.assertEqual(seen, [("created", "root"),
                                ("claimed", "py-" + self.board),
                                ("completed", "py-" + self.board)])

    def test_watcher_with_a_viewer_token(self):
        viewer = self.create_token("eyes-" + self.board, pb.ROLE_VIEWER)
        anonymous = self.connect()
        watcher = kanban.Watcher(anonymous, board=self.board, after_seq=0,
                                 kinds=["created"], token=viewer)
        self.addCleanup(watcher.close)
        puller = EventPuller(watcher)
        task = self.create_task("watched")
        events = puller.take(until=lambda got: any(
            e.task_id == task.id for e in got))
        self.assertEqual([(e.kind, e.task_id) for e in events],
                         [("created", task.id)])

        # Viewers read and watch, but do not write.
        with_viewer = self.connect(token=viewer)
        self.assertEqual(with_viewer.kanban.GetTask(
            pb.GetTaskRequest(task_id=task.id), timeout=10).title, "watched")
        self.assertCode(grpc.StatusCode.PERMISSION_DENIED,
                        with_viewer.kanban.CreateTask,
                        pb.CreateTaskRequest(board=self.board, title="no"),
                        timeout=10)

    def test_revoking_ends_the_watch_unauthenticated(self):
        name = "brief-" + self.board
        viewer = self.create_token(name, pb.ROLE_VIEWER)
        watcher = kanban.Watcher(self.connect(token=viewer), board=self.board,
                                 after_seq=0)
        self.addCleanup(watcher.close)
        puller = EventPuller(watcher)
        before = self.create_task("before")
        puller.take(until=lambda got: any(e.task_id == before.id for e in got))
        self.admin.admin.RevokeToken(pb.RevokeTokenRequest(name=name),
                                     timeout=10)
        # Nothing more is committed on the board: the stream can only end.
        with self.assertRaises(grpc.RpcError) as caught:
            puller.take(1)
        self.assertEqual(caught.exception.code(),
                         grpc.StatusCode.UNAUTHENTICATED)

    def test_examples_take_a_token(self):
        producer = example("producer", "--server", self.server.address,
                           "--board", self.board, "--json",
                           "--token", self.admin_token)
        out, err = producer.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual(producer.returncode, 0, err)
        self.assertEqual(len(out.splitlines()), 4, out)

        # From the environment; without any, the worker says why and exits 1.
        os.environ[kanban.TOKEN_ENV] = self.create_token(
            "ex-" + self.board, pb.ROLE_WORKER, worker_id="ex-w")
        worker = example("worker", "--server", self.server.address,
                         "--board", self.board, "--worker-id", "ex-w",
                         "--exit-when-idle", "--claim-wait", "1",
                         "--work-seconds", "0")
        out, err = worker.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual(worker.returncode, 0, err)
        self.assertGreaterEqual(out.count("completed "), 1, out)

        del os.environ[kanban.TOKEN_ENV]
        refused = example("worker", "--server", self.server.address,
                          "--board", self.board, "--exit-when-idle",
                          "--claim-wait", "0")
        out, err = refused.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual(refused.returncode, 1, out + err)
        self.assertIn("worker: UNAUTHENTICATED", err)

        watcher = example("watcher", "--server", self.server.address,
                          "--board", self.board, "--after", "0", "--json",
                          "--count", "1", "--token", self.admin_token)
        out, err = watcher.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual(watcher.returncode, 0, err)
        self.assertEqual(json.loads(out)["principal"], "root")


if __name__ == "__main__":
    unittest.main()
