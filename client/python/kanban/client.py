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
      channel: the grpc.Channel (plaintext, or TLS; see connect()).
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


def connect(address=DEFAULT_ADDRESS, options=(), tls_ca=None, tls_cert=None,
            tls_key=None, server_name=None):
    """Opens a channel to `address` ("host:port") and returns a Client.
    Connecting is lazy: the first call (or wait_ready()) connects.
    `options` are extra grpc channel arguments, added after (and so
    overriding) this module's reconnect-backoff settings.

    Plaintext unless a TLS argument is given (kanband's --tls_cert):
      tls_ca: PEM file of the CA(s) to trust; None: the system's CAs.
      tls_cert, tls_key: PEM client certificate and its key, for a kanband
        that requires one (--tls_client_ca); give both or neither.
      server_name: the name the server's certificate must carry, instead of
        the host in `address` (e.g. "localhost" while dialing 127.0.0.1).
    A file that cannot be read raises OSError now, not at the first call."""
    options = list(_CHANNEL_OPTIONS) + list(options)
    if not (tls_ca or tls_cert or tls_key or server_name):
        return Client(grpc.insecure_channel(address, options=options))
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("tls_cert and tls_key go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca), private_key=_read(tls_key),
        certificate_chain=_read(tls_cert))
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return Client(grpc.secure_channel(address, credentials, options=options))


def _read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()
