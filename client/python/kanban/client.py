"""connect(): one channel to a kanband (or to several replicas of one) and
the stubs of its services; with_token(): a channel that sends a bearer token
with every call; server_target(): how an address is dialed."""

import collections
import ipaddress
import os
import re
import socket

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


# Schemes of gRPC's own resolvers that a bare "word:rest" means; anything
# else without "://" is host:port ("localhost:7300").
_KNOWN_SCHEMES = frozenset({"dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.S)


class ServerTarget(collections.namedtuple(
        "ServerTarget", ("target", "round_robin", "authority", "replicas"))):
    """How an address is dialed (see server_target()).

    target: the gRPC target ("host:port", "ipv4:A:P,B:Q", "dns:///n:p", ...).
    round_robin: calls are spread over every address ("grpc.lb_policy_name").
    authority: the :authority, and the name TLS checks, for a list (its first
      element as written); None: gRPC's default.
    replicas: one dialable target per replica, in the order given.
    """


def _scheme(address):
    match = _SCHEME.match(address)
    if not match:
        return None
    scheme, rest = match.group(1), match.group(2)
    return scheme if scheme in _KNOWN_SCHEMES or rest.startswith("//") else None


def _bad(address, problem):
    return ValueError('server: "%s"%s' % (address, problem))


def _split_host_port(address, element):
    """(host, port, family) of one list element; family is 4 or 6 for an IP
    literal, None for a name."""
    quoted = ': "%s"' % element
    if _scheme(element) or "/" in element:
        raise _bad(address, quoted + " is not host:port; a scheme (dns:, ipv4:, "
                   "...) goes first, for the whole address")
    family = None
    if element.startswith("["):
        close = element.find("]")
        if close < 0:
            raise _bad(address, quoted + " has no closing ]")
        host, rest = element[1:close], element[close + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(address, quoted + " has no IPv6 address in [...]") from None
        family = 6
    else:
        colon = element.rfind(":")
        if colon < 0:
            raise _bad(address, quoted + " has no port (give host:port)")
        host, rest = element[:colon], element[colon:]
        if ":" in host:
            raise _bad(address, quoted + " is ambiguous: write an IPv6 address in "
                       "brackets, [::1]:7300")
        try:
            ipaddress.IPv4Address(host)
            family = 4
        except ValueError:
            pass
    if not host:
        raise _bad(address, quoted + " has no host")
    port = rest[1:]
    if (not rest.startswith(":") or not port.isdigit() or not port.isascii()
            or not 1 <= int(port) <= 65535):
        raise _bad(address, quoted + " has no port from 1 to 65535 (give host:port)")
    return host, port, family


def _resolve(address, host, family):
    """The IPv4 and IPv6 addresses of `host`, each in the resolver's order
    without repeats."""
    if family == 4:
        return [host], []
    if family == 6:
        return [], [host]
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise _bad(address, ': cannot resolve "%s": %s' % (host, error.strerror)) from None
    v4, v6 = [], []
    for family_, _, _, _, sockaddr in infos:
        into = v4 if family_ == socket.AF_INET else v6 if family_ == socket.AF_INET6 else None
        if into is not None and sockaddr[0] not in into:
            into.append(sockaddr[0])
    return v4, v6


def server_target(address):
    """How `address` is dialed; the forms are those of kanbanctl --server:

      host:port, [v6]:port  one server, as given (gRPC resolves a name).
      a:1,b:2,c:3           replicas of one kanban: round_robin over them.
                            Spaces around commas are ignored; each element
                            needs a port. IP literals make an ipv4: (or ipv6:)
                            list; names are resolved here, once (every
                            address of every name; IPv4 when each element has
                            one, else IPv6). The first element is the
                            authority (the name TLS checks).
      ipv4:A:P,B:Q          gRPC's own lists, as given; round_robin.
      ipv6:[A]:P,[B]:Q
      dns:///name:port      re-resolved by gRPC; round_robin over its records.
      unix:path, scheme:... as given.

    Returns a ServerTarget. ValueError ('server: "a:1,,b:2" has an empty
    address', no port, a scheme inside a list, a name that does not resolve,
    IPv4-only mixed with IPv6-only)."""
    address = address.strip()
    if not address:
        raise ValueError("server: the address is empty")
    scheme = _scheme(address)
    if scheme in ("ipv4", "ipv6"):
        elements = address[len(scheme) + 1:].split(",")
        if any(not e.strip() for e in elements):
            raise _bad(address, " has an empty address")
        return ServerTarget(address, True, elements[0],
                            ["%s:%s" % (scheme, e) for e in elements])
    if scheme:
        return ServerTarget(address, scheme == "dns", None, [address])
    if "," not in address:
        return ServerTarget(address, False, None, [address])
    # Every element is checked before any name is looked up.
    elements = []
    for element in address.split(","):
        element = element.strip()
        if not element:
            raise _bad(address, " has an empty address")
        elements.append(_split_host_port(address, element))
    resolved = [_resolve(address, host, family) for host, _, family in elements]
    use_v4 = all(v4 for v4, _ in resolved)
    if not use_v4 and not all(v6 for _, v6 in resolved):
        raise _bad(address, " mixes IPv4-only and IPv6-only servers; one list holds "
                   "one family (or give one dns:///name:port)")
    replicas = []
    for (_, port, _), (v4, v6) in zip(elements, resolved):
        for ip in v4 if use_v4 else v6:
            replicas.append("%s:%s" % (ip, port) if use_v4 else "[%s]:%s" % (ip, port))
    host, port, family = elements[0]
    authority = "[%s]:%s" % (host, port) if family == 6 else "%s:%s" % (host, port)
    return ServerTarget(("ipv4:" if use_v4 else "ipv6:") + ",".join(replicas), True,
                        authority, replicas)


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
    """Opens a channel to `address` and returns a Client. `address` is one
    "host:port", or several replicas of one kanban ("a:7300,b:7300",
    "ipv4:...", "dns:///name:7300"; see server_target()), whose calls are
    then spread over the replicas with round_robin: a replica that is down is
    skipped, and a Worker's or Watcher's retry lands on one that is up.
    ValueError for an address server_target() refuses.
    Connecting is lazy: the first call (or wait_ready()) connects.
    `options` are extra grpc channel arguments, added after (and so
    overriding) this module's reconnect-backoff and balancing settings.

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
    target = server_target(address)
    balancing = []
    if target.round_robin:
        balancing.append(("grpc.lb_policy_name", "round_robin"))
    if target.authority:
        balancing.append(("grpc.default_authority", target.authority))
    options = list(_CHANNEL_OPTIONS) + balancing + list(options)
    address = target.target
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
