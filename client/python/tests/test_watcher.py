"""kanban.Watcher against a real kanband: exact resume across restarts,
from-now starts, OUT_OF_RANGE and close()."""

import signal
import threading
import time
import unittest

import grpc

from kanband_process import EventPuller, Kanband, WAIT_TIMEOUT, wait_for

import kanban
from kanban.v1 import kanban_pb2 as pb


def created(events):
    return [e.task_id for e in events if e.kind == "created"]


class WatcherTest(unittest.TestCase):

    def setUp(self):
        self.server = Kanband().start()
        self.client = kanban.connect(self.server.address)

    def tearDown(self):
        self.client.close()
        code = self.server.stop()
        self.server.close()
        self.assertEqual(code, 0, "kanband exited with %s" % code)

    def create(self, title):
        return self.client.kanban.CreateTask(pb.CreateTaskRequest(title=title),
                                             timeout=10).id

    def test_resumes_exactly_across_server_restarts(self):
        watcher = kanban.Watcher(self.client, after_seq=0, min_backoff=0.05,
                                 max_backoff=1.0)
        puller = EventPuller(watcher)
        ids = [self.create("before %d" % i) for i in range(3)]
        events = puller.take(3)
        self.assertEqual(created(events), ids)

        # The watcher is not reading while the server is down and while the
        # next tasks are made: they can only reach it by an exact resume.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self.server.stop(sig)
            self.server.start(same_port=True)
            batch = [self.create("after %s %d" % (sig.name, i)) for i in range(3)]
            ids += batch
            events += puller.take(until=lambda got: batch[-1] in created(got))

        seqs = [e.seq for e in events]
        # Seqs are gap-free across the database, and every event here is a
        # creation: exactly 1..9, each once.
        self.assertEqual(seqs, list(range(1, len(ids) + 1)))
        self.assertEqual(created(events), ids)
        self.assertEqual(watcher.position, seqs[-1])
        watcher.close()

    def test_from_now_skips_history(self):
        self.create("old news")
        watcher = kanban.Watcher(self.client)  # after_seq=None: from now.
        self.assertEqual(watcher.position, -1)
        got = []
        reader = threading.Thread(target=lambda: got.append(next(iter(watcher))),
                                  daemon=True)
        reader.start()
        # The first response (a bookmark at the head) fixes the start.
        wait_for(lambda: watcher.position >= 1, what="the first bookmark")
        fresh = self.create("fresh")
        reader.join(WAIT_TIMEOUT)
        self.assertEqual([(e.task_id, e.kind) for e in got], [(fresh, "created")])
        watcher.close()

    def test_filters_and_bookmarks_move_the_position(self):
        watched = self.create("watched")
        for i in range(3):
            self.create("other %d" % i)
        head = 4
        with kanban.Watcher(self.client, after_seq=0, task_ids=[watched],
                            bookmark_interval=0.05) as watcher:
            puller = EventPuller(watcher)
            self.assertEqual([e.task_id for e in puller.take(1)], [watched])
            # Bookmarks carry the position past the events filtered out.
            threading.Thread(target=lambda: _drain(puller), daemon=True).start()
            wait_for(lambda: watcher.position >= head, what="a bookmark")

    def test_close_ends_the_iteration(self):
        watcher = kanban.Watcher(self.client, after_seq=0)
        done = threading.Event()

        def follow():
            for _ in watcher:
                pass
            done.set()  # Reached only when the iteration ends cleanly.

        threading.Thread(target=follow, daemon=True).start()
        wait_for(lambda: watcher.position >= 0, what="the first response")
        watcher.close()
        self.assertTrue(done.wait(WAIT_TIMEOUT))

    def test_close_interrupts_the_reconnect_backoff(self):
        self.server.stop()
        watcher = kanban.Watcher(self.client, after_seq=0, min_backoff=60.0,
                                 max_backoff=60.0)
        done = threading.Event()

        def follow():
            for _ in watcher:
                pass
            done.set()

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(0.5)  # Any point (connecting or backing off) must do.
        watcher.close()
        self.assertTrue(done.wait(WAIT_TIMEOUT))
        self.server.start()  # For tearDown.


def _drain(puller):
    try:
        puller.take(count=1000, timeout=WAIT_TIMEOUT)
    except AssertionError:
        pass  # The test closed the watcher.


class RetentionTest(unittest.TestCase):

    def test_out_of_range_names_the_oldest_seq(self):
        server = Kanband("--event_retention_count=2", "--sweep_interval=50ms")
        server.start()
        try:
            with kanban.connect(server.address) as client:
                for i in range(6):
                    client.kanban.CreateTask(
                        pb.CreateTaskRequest(title="t%d" % i), timeout=10)

                def refused():
                    # Until the sweeper trims, seq 1 is still there.
                    with kanban.Watcher(client, after_seq=0) as watcher:
                        try:
                            next(iter(watcher))
                        except grpc.RpcError as error:
                            return error
                    return None

                error = wait_for(refused, what="retention to trim events")
                self.assertEqual(error.code(), grpc.StatusCode.OUT_OF_RANGE)
                oldest = kanban.oldest_seq(error)
                self.assertIsNotNone(oldest)
                self.assertGreater(oldest, 1)
                self.assertIn(str(oldest), error.details())

                # From the oldest retained seq on, watching works again.
                with kanban.Watcher(client, after_seq=oldest - 1) as watcher:
                    self.assertEqual(next(iter(watcher)).seq, oldest)
        finally:
            self.assertEqual(server.stop(), 0)
            server.close()


if __name__ == "__main__":
    unittest.main()
