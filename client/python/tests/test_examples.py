"""The examples end to end, as subprocesses against a real kanband:
producer.py makes a pipeline of dependent tasks, two worker.py processes
finish it, watcher.py prints (and resumes) the feed."""

import json
import os
import signal
import unittest

from kanband_process import Kanband, LineReader, WAIT_TIMEOUT, example

import kanban
from kanban.v1 import kanban_pb2 as pb

BOARD = "pipeline"


def events_of(lines):
    return [json.loads(line) for line in lines if line.startswith("{")]


def completed(lines):
    return [e for e in events_of(lines) if e["kind"] == "completed"]


class ExamplesTest(unittest.TestCase):

    def setUp(self):
        self.server = Kanband().start()
        self.client = kanban.connect(self.server.address)
        self.client.kanban.CreateBoard(pb.CreateBoardRequest(name=BOARD))
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()
        self.client.close()
        code = self.server.stop()
        self.server.close()
        self.assertEqual(code, 0, "kanband exited with %s" % code)

    def start(self, name, *args):
        process = example(name, "--server", self.server.address, *args)
        self.processes.append(process)
        return process

    def finish(self, process, reader=None):
        """SIGTERM, then the exit code and every output line."""
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=WAIT_TIMEOUT)
        return code, (reader.rest() if reader else process.stdout.read().splitlines())

    def test_pipeline_runs_in_dependency_order(self):
        state = os.path.join(self.server.dir, "watch.state")
        watcher = self.start("watcher", "--board", BOARD, "--after", "0",
                             "--json", "--state-file", state)
        watch_lines = LineReader(watcher.stdout)
        workers = [self.start("worker", "--board", BOARD, "--worker-id", name,
                              "--work-seconds", "0.05")
                   for name in ("w1", "w2")]
        worker_lines = [LineReader(w.stdout) for w in workers]

        producer = self.start("producer", "--board", BOARD, "--tag", "t1", "--json")
        out, err = producer.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual(producer.returncode, 0, err)
        tasks = {t["title"]: t for t in map(json.loads, out.splitlines())}
        self.assertEqual(sorted(tasks), ["t1 build-a", "t1 build-b",
                                         "t1 fetch", "t1 release"])
        ids = {title.split()[1]: t["id"] for title, t in tasks.items()}
        self.assertEqual(tasks["t1 build-a"]["parents"], [ids["fetch"]])
        self.assertEqual(sorted(tasks["t1 release"]["parents"]),
                         sorted([ids["build-a"], ids["build-b"]]))

        # The feed shows all four completions; then the workers may stop.
        watch_lines.wait_until(lambda lines: len(completed(lines)) >= 4)
        results = {}
        for worker, reader in zip(workers, worker_lines):
            code, lines = self.finish(worker, reader)
            self.assertEqual(code, 0, lines)
            results.update((line.split()[1], line) for line in lines
                           if line.startswith("completed "))
        self.assertEqual(sorted(results), sorted(ids.values()))

        for name, task_id in ids.items():
            task = self.client.kanban.GetTask(pb.GetTaskRequest(task_id=task_id))
            self.assertEqual(task.status, pb.DONE, name)
            self.assertRegex(task.result, r"^done by w[12]: t1 " + name + "$")

        code, lines = self.finish(watcher, watch_lines)
        self.assertEqual(code, 0, lines)
        feed = events_of(lines)
        seqs = [e["seq"] for e in feed]
        self.assertEqual(seqs, sorted(set(seqs)))  # In order, no duplicates.
        done_at = {e["task_id"]: e["seq"] for e in completed(lines)}
        self.assertEqual(len(completed(lines)), 4)  # Each task finished once.
        for child in ("build-a", "build-b"):
            self.assertLess(done_at[ids["fetch"]], done_at[ids[child]])
            self.assertLess(done_at[ids[child]], done_at[ids["release"]])
        # Children waited: created TODO, promoted to READY by their parents.
        promoted = {e["task_id"] for e in feed if e["kind"] == "promoted"}
        self.assertEqual(promoted, {ids["build-a"], ids["build-b"], ids["release"]})
        with open(state) as saved:
            self.assertGreaterEqual(int(saved.read()), seqs[-1])

        # The same tag again: the same tasks (idempotency keys), nothing new.
        producer = self.start("producer", "--board", BOARD, "--tag", "t1", "--json")
        out, err = producer.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual(producer.returncode, 0, err)
        self.assertEqual(sorted(t["id"] for t in map(json.loads, out.splitlines())),
                         sorted(ids.values()))

        # A watcher started again from the state file prints only what is new.
        fresh = self.client.kanban.CreateTask(
            pb.CreateTaskRequest(board=BOARD, title="afterwards")).id
        again = self.start("watcher", "--board", BOARD, "--json",
                           "--state-file", state, "--count", "1")
        out, err = again.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual(again.returncode, 0, err)
        self.assertEqual([(e["task_id"], e["kind"]) for e in events_of(out.splitlines())],
                         [(fresh, "created")])

    def test_worker_exits_when_idle_and_watcher_exits_1_on_errors(self):
        worker = self.start("worker", "--board", BOARD, "--exit-when-idle",
                            "--claim-wait", "0")
        out, err = worker.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual((worker.returncode, out), (0, ""), err)

        # An error that reconnecting cannot fix ends the watch.
        bad = self.start("watcher", "--kind", "nonsense", "--after", "0")
        out, err = bad.communicate(timeout=WAIT_TIMEOUT)
        self.assertEqual(bad.returncode, 1, out)
        self.assertIn("watch: INVALID_ARGUMENT", err)


if __name__ == "__main__":
    unittest.main()
