"""Several kanband replicas on one PostgreSQL database behind one address
list: connect("a,b") spreads calls over both with round_robin, and the
channel, and a Worker on it, carry on when one replica is SIGKILLed. Also
the address forms server_target() accepts and refuses."""

import os
import signal
import time
import unittest

import grpc

from kanband_process import (Kanband, POSTGRES_ENV, WAIT_TIMEOUT,
                             new_postgres_database, postgres_server)

import kanban
from kanban.v1 import kanban_pb2 as pb


class ServerTargetTest(unittest.TestCase):

    def test_forms(self):
        one = kanban.server_target("kanban.example:7300")
        self.assertEqual(one.target, "kanban.example:7300")
        self.assertFalse(one.round_robin)
        listed = kanban.server_target("127.0.0.1:7301, localhost:7302")
        self.assertEqual(listed.target[:5], "ipv4:")
        self.assertIn("127.0.0.1:7301,", listed.target)
        self.assertTrue(listed.round_robin)
        self.assertEqual(listed.authority, "127.0.0.1:7301")
        dns = kanban.server_target("dns:///kanban.example:7300")
        self.assertEqual(dns.target, "dns:///kanban.example:7300")
        self.assertTrue(dns.round_robin)
        self.assertTrue(kanban.server_target("ipv4:127.0.0.1:1,127.0.0.1:2").round_robin)

    def test_bad_addresses_say_what_is_wrong(self):
        for address, message in [
                ("", "server: the address is empty"),
                ("a:1,,b:2", 'server: "a:1,,b:2" has an empty address'),
                ("a:1,b", '"b" has no port (give host:port)'),
                ("a:1,b:0", '"b:0" has no port from 1 to 65535'),
                ("a:1,dns:///b:2", "a scheme (dns:, ipv4:, ...) goes first"),
                ("127.0.0.1:1,[::1]:2", "mixes IPv4-only and IPv6-only"),
                ("127.0.0.1:1,no-such-host.invalid:2", 'cannot resolve "no-such-host.invalid"'),
        ]:
            with self.subTest(address=address):
                with self.assertRaises(ValueError) as raised:
                    kanban.connect(address)
                self.assertIn(message, str(raised.exception))


@unittest.skipIf(postgres_server() is None,
                 "no PostgreSQL: run through ctest (fixture `postgres`), or set "
                 + POSTGRES_ENV)
class ReplicasTest(unittest.TestCase):

    def setUp(self):
        db = new_postgres_database()
        # One after the other: the first creates the schema's tables.
        self.a = Kanband("--replica_id=a", db=db).start()
        self.addCleanup(self.a.close)
        self.b = Kanband("--replica_id=b", db=db).start()
        self.addCleanup(self.b.close)
        self.client = kanban.connect(self.a.address + "," + self.b.address)
        self.addCleanup(self.client.close)

    def replica(self):
        return self.client.kanban.GetServerInfo(pb.GetServerInfoRequest(),
                                                timeout=5).replica_id

    def await_both(self):
        """Calls until both replicas answered: round_robin picks a replica
        only once its connection is up."""
        self.client.wait_ready(WAIT_TIMEOUT)
        seen = set()
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                seen.add(self.replica())
            except grpc.RpcError as error:
                # A loaded machine can time a connection's handshake out;
                # gRPC then tries again.
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            if len(seen) == 2:
                return
        self.fail("only %s answered" % seen)

    def kill_a(self):
        self.assertEqual(self.a.stop(signal.SIGKILL), -signal.SIGKILL)

    def test_calls_spread_over_replicas_and_survive_a_kill(self):
        self.await_both()
        answered = [self.replica() for _ in range(20)]
        self.assertGreaterEqual(answered.count("a"), 5, answered)
        self.assertGreaterEqual(answered.count("b"), 5, answered)

        self.kill_a()
        # A call racing the kill may fail; soon 20 in a row succeed, on B.
        in_a_row, failed = 0, []
        for _ in range(200):
            try:
                self.assertEqual(self.replica(), "b")
                in_a_row += 1
            except grpc.RpcError as error:
                failed.append(error.code())
                in_a_row = 0
            if in_a_row == 20:
                break
        self.assertEqual(in_a_row, 20, failed)
        self.assertLessEqual(len(failed), 2, failed)

    def test_worker_carries_on_when_a_replica_dies(self):
        self.await_both()
        to_b = kanban.connect(self.b.address)
        self.addCleanup(to_b.close)
        ids = [to_b.kanban.CreateTask(pb.CreateTaskRequest(title="t%d" % i),
                                      timeout=10).id for i in range(4)]
        handled = []

        def handle(ctx):
            handled.append(ctx.task.id)
            if len(handled) == 2:
                self.kill_a()  # Mid-way, under the worker.
            return "done"

        worker = kanban.Worker(self.client, worker_id="py-replicas", lease=10.0,
                               claim_wait=1.0, retry_delay=0.1, rpc_timeout=5.0)
        self.assertEqual(worker.run(handle, max_tasks=4), 4)
        self.assertEqual(sorted(handled), sorted(ids))
        for task_id in ids:
            task = to_b.kanban.GetTask(pb.GetTaskRequest(task_id=task_id),
                                       timeout=10)
            self.assertEqual(pb.Status.Name(task.status), "DONE", task_id)


if __name__ == "__main__":
    unittest.main()
