"""connect(): one channel to a kanband and the stubs of its services."""

import grpc

from kanban.v1 import kanban_pb2_grpc
from grpc_health.v1 import health_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:7300"

# gRPC's own reconnect backoff starts at 1 s and grows to 120 s, which would
# leave a Worker or Watcher idle for minutes after a short server restart.
# A kanband is usually near its clients, so retry the connection sooner.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class Client:
    """A channel and the stubs on it; close() (or `with`) closes the channel.

    Attributes:
      channel: the grpc.Channel (insecure: kanband serves plaintext).
      kanban: KanbanServiceStub (tasks, boards, events, claims).
      heartbeats: HeartbeatServiceStub (Heartbeat, ListWorkers).
      health: grpc.health.v1 HealthStub (Check, Watch).

    Stubs are thread-safe; every call raises grpc.RpcError on failure, whose
    code() is the status the README's API tables name.
    """

    def __init__(self, channel):
        self.channel = channel
        self.kanban = kanban_pb2_grpc.KanbanServiceStub(channel)
        self.heartbeats = kanban_pb2_grpc.HeartbeatServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def wait_ready(self, timeout=10.0):
        """Blocks until the channel is connected; raises
        grpc.FutureTimeoutError after `timeout` seconds."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def connect(address=DEFAULT_ADDRESS, options=()):
    """Opens an insecure channel to `address` ("host:port") and returns a
    Client. Connecting is lazy: the first call (or wait_ready()) connects.
    `options` are extra grpc channel arguments, added after (and so
    overriding) this module's reconnect-backoff settings."""
    channel = grpc.insecure_channel(
        address, options=list(_CHANNEL_OPTIONS) + list(options))
    return Client(channel)
