"""Python client for the kanban task board.

Thin helpers over the generated gRPC stubs:

    import kanban
    from kanban.v1 import kanban_pb2 as pb

    with kanban.connect("127.0.0.1:7300") as client:
        task = client.kanban.CreateTask(pb.CreateTaskRequest(title="hello"))

- connect(): a channel plus KanbanService, HeartbeatService, AdminService
  and Health stubs; with token= (or $KANBAN_TOKEN) every call carries it.
  The address may list several replicas ("a:7300,b:7300"): round_robin.
- server_target(): how an address is dialed (its forms, and errors).
- with_token(): any channel, sending a bearer token with every call.
- Worker: claims tasks, runs a handler on each under a heartbeated lease,
  completes or fails them by the handler's outcome.
- Watcher: iterates over the event feed and resumes exactly after dropped
  streams and server restarts.

The stubs (kanban.v1.kanban_pb2, kanban.v1.kanban_pb2_grpc,
grpc_health.v1.health_pb2, ...) are generated from proto/ when the package
is built: install it with pip (see README.md) rather than importing it from
the source tree.
"""

import pkgutil

# Imported from the source tree (say, python3 -c in client/python, where the
# current directory comes first on sys.path), this package has no v1/: extend
# __path__ over sys.path so that "kanban.v1" still resolves to the installed
# package's stubs.
__path__ = pkgutil.extend_path(__path__, __name__)

try:
    from kanban.v1 import kanban_pb2 as _check  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the setup
    raise ImportError(
        "kanban: generated stubs not found; this is the source tree, not the "
        "installed package: pip install --no-index --no-build-isolation "
        "client/python (client/python/README.md): " + str(error)) from error

from kanban.client import (  # noqa: E402
    Client, ServerTarget, connect, server_target, with_token, DEFAULT_ADDRESS,
    TOKEN_ENV)
from kanban.watcher import Watcher, WatchOrderError, oldest_seq  # noqa: E402
from kanban.worker import (  # noqa: E402
    PermanentError, Release, TaskContext, Worker, WorkerEvent,
    default_worker_id)

__all__ = [
    "Client", "connect", "with_token", "server_target", "ServerTarget",
    "DEFAULT_ADDRESS", "TOKEN_ENV",
    "Watcher", "WatchOrderError", "oldest_seq",
    "Worker", "WorkerEvent", "TaskContext", "Release", "PermanentError",
    "default_worker_id",
]
