"""connect(): one channel to a kanband and the stubs of its services;
with_token(): a channel that sends a bearer token with every call."""

import collections
import os

import grpc

from kanban.v1 import kanban_pb2_grpc
from grpc_health.v1 import health_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:7300"
# Where connect() looks for a token when none is passed.
TOKEN_ENV = "KANBAN_TOKEN"
_AUTHORIZATION = "authorization"

# gRPC's own reconnect backoff starts at 1 s and grows to 120 s, which would
# leave a Worker or Watcher idle for minutes after a short server restart.
# A kanband is usually near its clients, so retry the connection sooner.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class _CallDetails(
        collections.namedtuple("_CallDetails", (
            "method", "timeout", "metadata", "credentials", "wait_for_ready",
            "compression")),
        grpc.ClientCallDetails):
    pass


class _BearerToken(grpc.UnaryUnaryClientInterceptor,
                   grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor,
                   grpc.StreamStreamClientInterceptor):
    """Adds ("authorization", "Bearer <token>") to every call's metadata,
    unless the call already has an authorization entry (its own, or that
    of an interceptor applied after this one), which then wins."""

    def __init__(self, token):
        self._entry = (_AUTHORIZATION, "Bearer " + token)

    def _with_token(self, details):
        metadata = list(details.metadata or ())
        if any(key == _AUTHORIZATION for key, _ in metadata):
            return details
        metadata.append(self._entry)
        return _CallDetails(details.method, details.timeout, metadata,
                            details.credentials,
                            getattr(details, "wait_for_ready", None),
                            getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)

    def __repr__(self):
        return "<kanban bearer token>"  # Never the secret.


def _check_token(token):
    """The token without surrounding whitespace (a line break read from a
    file along with it); ValueError, without the token in the message, if
    metadata cannot carry it."""
    token = token.strip()
    if not token:
        raise ValueError("token: empty")
    if any(not "!" <= c <= "~" for c in token):
        raise ValueError("token: contains a character a bearer token cannot "
                         "have (only visible ASCII: no spaces or line breaks)")
    return token


def with_token(channel, token):
    """`channel` (a grpc.Channel or a Client's .channel) wrapped so that every
    call carries the metadata "authorization: Bearer <token>", for a kanband
    run with --auth=token. A call that passes its own authorization metadata
    keeps it. Through an interceptor, not call credentials: gRPC attaches
    those only to TLS channels. Without TLS the token crosses the network in
    the clear. ValueError for a token metadata cannot carry; surrounding
    whitespace is ignored."""
    return grpc.intercept_channel(channel, _BearerToken(_check_token(token)))


class Client:
    """A channel and the stubs on it; close() (or `with`) closes the channel.

    Attributes:
      channel: the grpc.Channel (plaintext, or TLS; with a token, wrapped by
        with_token(); see connect()).
      kanban: KanbanServiceStub (tasks, boards, events, claims).
      heartbeats: HeartbeatServiceStub (Heartbeat, ListWorkers).
      admin: AdminServiceStub (Backup, CheckIntegrity, CreateToken,
        ListTokens, RevokeToken; ROLE_ADMIN when auth is on).
      health: grpc.health.v1 HealthStub (Check, Watch).

    Stubs are thread-safe; every call raises grpc.RpcError on failure, whose
    code() is the status the README's API tables name.
    """

    def __init__(self, channel):
        self.channel = channel
        self.kanban = kanban_pb2_grpc.KanbanServiceStub(channel)
        self.heartbeats = kanban_pb2_grpc.HeartbeatServiceStub(channel)
        self.admin = kanban_pb2_grpc.AdminServiceStub(channel)
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
            tls_key=None, server_name=None, token=None):
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
    A file that cannot be read raises OSError now, not at the first call.

    token: the bearer token every call carries (kanband --auth=token; see
      with_token()). None (the default) reads $KANBAN_TOKEN; "" sends none.
      ValueError for a token metadata cannot carry."""
    if token is None:
        token = os.environ.get(TOKEN_ENV, "")
    # Checked before the channel exists, so that nothing is left open.
    token = _check_token(token) if token.strip() else ""
    options = list(_CHANNEL_OPTIONS) + list(options)
    if not (tls_ca or tls_cert or tls_key or server_name):
        channel = grpc.insecure_channel(address, options=options)
    else:
        if bool(tls_cert) != bool(tls_key):
            raise ValueError("tls_cert and tls_key go together")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(tls_ca), private_key=_read(tls_key),
            certificate_chain=_read(tls_cert))
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        channel = grpc.secure_channel(address, credentials, options=options)
    return Client(with_token(channel, token) if token else channel)


def _read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()
