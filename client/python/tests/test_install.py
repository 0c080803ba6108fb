"""The installed package, as a user gets it from pip: importable from any
directory, the stubs inside it, connect() talking to a real kanband."""

import os
import subprocess
import sys
import tempfile
import unittest

from kanband_process import CLIENT_DIR, Kanband, WAIT_TIMEOUT, installed_kanban

# What the README tells a user to type after installing.
USER_SCRIPT = """
import sys
import kanban
from kanban.v1 import kanban_pb2 as pb
with kanban.connect(sys.argv[1]) as client:
    task = client.kanban.CreateTask(pb.CreateTaskRequest(title="from pip"), timeout=10)
    got = client.kanban.GetTask(pb.GetTaskRequest(task_id=task.id), timeout=10)
    print(got.id, pb.Status.Name(got.status), got.title, kanban.__file__, sep="\t")
"""


class InstalledPackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Kanband().start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_package_and_stubs_are_installed_together(self):
        kanban = installed_kanban()
        from kanban.v1 import kanban_pb2
        from grpc_health.v1 import health_pb2
        self.assertEqual(os.path.dirname(kanban_pb2.__file__),
                         os.path.join(os.path.dirname(kanban.__file__), "v1"))
        self.assertEqual(health_pb2.DESCRIPTOR.package, "grpc.health.v1")

    def run_user_script(self, cwd):
        return subprocess.run(
            [sys.executable, "-c", USER_SCRIPT, self.server.address], cwd=cwd,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            capture_output=True, text=True, timeout=WAIT_TIMEOUT)

    def test_connect_from_an_unrelated_directory(self):
        with tempfile.TemporaryDirectory(prefix="kanban-py-cwd-") as cwd:
            result = self.run_user_script(cwd)
        self.assertEqual(result.returncode, 0, result.stderr)
        task_id, status, title, where = result.stdout.rstrip("\n").split("\t")
        self.assertTrue(task_id)
        self.assertEqual((status, title), ("READY", "from pip"))
        self.assertFalse(where.startswith(CLIENT_DIR), where)

    def test_connect_from_the_source_tree(self):
        # There the current directory's kanban/ comes first on sys.path; the
        # stubs must still be found (the installed ones).
        result = self.run_user_script(CLIENT_DIR)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("\tREADY\tfrom pip\t", result.stdout)


if __name__ == "__main__":
    unittest.main()
