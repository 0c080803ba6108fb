"""connect() with TLS against a real kanband that requires client
certificates (mutual TLS); the certificates are made with openssl."""

import os
import subprocess
import tempfile
import unittest

import grpc

from kanband_process import Kanband, WAIT_TIMEOUT

import kanban
from kanban.v1 import kanban_pb2 as pb

OPENSSL = "/usr/bin/openssl"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_certs(directory):
    """Writes ca.pem, server.{pem,key} (127.0.0.1 and localhost) and
    client.{pem,key}, both signed by the CA, into `directory`; returns a
    function that names a file there."""
    def f(name):
        return os.path.join(directory, name)

    def run(*args):
        subprocess.run([OPENSSL] + list(args), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    run("req", "-x509", *EC, "-keyout", f("ca.key"), "-out", f("ca.pem"),
        "-days", "2", "-subj", "/CN=kanban test ca")
    for serial, (name, ext) in enumerate([
            ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
            ("client", "extendedKeyUsage=clientAuth\n")], start=2):
        with open(f(name + ".ext"), "w") as out:
            out.write(ext)
        run("req", "-new", *EC, "-keyout", f(name + ".key"),
            "-out", f(name + ".csr"), "-subj", "/CN=kanban test " + name)
        run("x509", "-req", "-in", f(name + ".csr"), "-CA", f("ca.pem"),
            "-CAkey", f("ca.key"), "-set_serial", str(serial), "-days", "2",
            "-extfile", f(name + ".ext"), "-out", f(name + ".pem"))
    return f


class TlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls._certs = tempfile.TemporaryDirectory(prefix="kanban-py-tls-")
        cls.f = staticmethod(make_certs(cls._certs.name))
        cls.server = Kanband("--tls_cert=" + cls.f("server.pem"),
                             "--tls_key=" + cls.f("server.key"),
                             "--tls_client_ca=" + cls.f("ca.pem")).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        cls.server.close()
        cls._certs.cleanup()
        assert code == 0, "kanband exited with %s" % code

    def test_client_certificate_is_accepted(self):
        with kanban.connect(self.server.address, tls_ca=self.f("ca.pem"),
                            tls_cert=self.f("client.pem"),
                            tls_key=self.f("client.key"),
                            server_name="localhost") as client:
            task = client.kanban.CreateTask(
                pb.CreateTaskRequest(title="over tls"), timeout=WAIT_TIMEOUT)
            got = client.kanban.GetTask(pb.GetTaskRequest(task_id=task.id),
                                        timeout=WAIT_TIMEOUT)
            self.assertEqual(got.title, "over tls")

    def test_without_client_certificate_or_tls_is_refused(self):
        for kwargs in ({"tls_ca": self.f("ca.pem")}, {}):
            with self.subTest(**kwargs), \
                    kanban.connect(self.server.address, **kwargs) as client:
                with self.assertRaises(grpc.RpcError) as caught:
                    client.kanban.ListBoards(pb.ListBoardsRequest(),
                                             timeout=WAIT_TIMEOUT)
                self.assertEqual(caught.exception.code(),
                                 grpc.StatusCode.UNAVAILABLE)

    def test_cert_without_key_is_an_error(self):
        with self.assertRaises(ValueError):
            kanban.connect(self.server.address, tls_cert=self.f("client.pem"))


if __name__ == "__main__":
    unittest.main()
