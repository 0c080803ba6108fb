"""Generates the gRPC stubs into the build, next to the kanban package.

The stubs come from the repository's proto/ (two folders up; set
KANBAN_PROTO_DIR to build from elsewhere), compiled by Debian's `protoc`
(protobuf-compiler 3.21) and `grpc_python_plugin` (protobuf-compiler-grpc
1.51): the same versions as the python3-protobuf and python3-grpcio they run
on. (Debian 12's python3-grpc-tools is grpcio-tools 1.14, whose protoc is
too old for this runtime and for proto3 `optional`.)

Modules produced: kanban.v1.kanban_pb2{,_grpc} and
grpc_health.v1.health_pb2{,_grpc}. health.proto is compiled from a copy at
grpc_health/v1/ so its module is grpc_health.v1.health_pb2, as in PyPI's
grpcio-health-checking: under grpc/health/v1/ it would sit inside the name
of the installed grpc package, which would hide it.
"""

import os
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _tool(name, package):
    path = shutil.which(name)
    if not path:
        raise SystemExit(f"kanban-client: {name} not found; apt-get install {package}")
    return path


class BuildPyWithStubs(build_py):
    """build_py, then protoc into the build directory."""

    def run(self):
        super().run()
        proto_root = os.environ.get(
            "KANBAN_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))
        kanban_proto = os.path.join(proto_root, "kanban", "v1", "kanban.proto")
        health_proto = os.path.join(proto_root, "grpc", "health", "v1", "health.proto")
        for path in (kanban_proto, health_proto):
            if not os.path.exists(path):
                raise SystemExit(f"kanban-client: {path} not found; build from the "
                                 "repository's client/python or set KANBAN_PROTO_DIR")
        protoc = [
            _tool("protoc", "protobuf-compiler"),
            "--plugin=protoc-gen-grpc_python=" +
            _tool("grpc_python_plugin", "protobuf-compiler-grpc"),
            "--python_out=" + self.build_lib, "--grpc_python_out=" + self.build_lib,
        ]
        subprocess.run(protoc + ["--proto_path=" + proto_root, kanban_proto], check=True)
        with tempfile.TemporaryDirectory() as root:
            copy = os.path.join(root, "grpc_health", "v1", "health.proto")
            os.makedirs(os.path.dirname(copy))
            shutil.copyfile(health_proto, copy)
            subprocess.run(protoc + ["--proto_path=" + root, copy], check=True)
        for package in ("kanban/v1", "grpc_health", "grpc_health/v1"):
            init = os.path.join(self.build_lib, package, "__init__.py")
            if not os.path.exists(init):
                open(init, "w").close()


setup(cmdclass={"build_py": BuildPyWithStubs})
