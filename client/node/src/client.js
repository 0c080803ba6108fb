'use strict';
// Connects to a kanband: loads the repo's .proto files at runtime and wraps
// KanbanService, HeartbeatService and grpc.health.v1.Health in promise-
// returning methods.
//
// How messages look in JavaScript (proto-loader options, fixed here):
//   keepCase: false  fields are lowerCamelCase: taskId, afterSeq, bookmarkSeq.
//   enums: String    statuses are names: 'READY', 'DONE', 'LOST'.
//   longs: Number    int64 fields (seq, version, Comment.id, seconds) are JS
//                    numbers: exact up to 2^53-1, which a seq or version
//                    never reaches in practice.
//   defaults: true   unset scalars read as 0 / '' / [], so `task.result` is
//                    always a string; unset messages read as null.
//   oneofs: true     WatchEventsRequest.start names the field that is set.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { serverTarget, targetChannelOptions } = require('./address');

// The .proto files: packed into the package's proto/ by `npm pack`
// (scripts/proto.js), or, in a checkout, the repository's proto/ folder, the
// one contract every client shares.
const PACKED_PROTO_ROOT = path.resolve(__dirname, '..', 'proto');
const DEFAULT_PROTO_ROOT = fs.existsSync(PACKED_PROTO_ROOT)
  ? PACKED_PROTO_ROOT
  : path.resolve(__dirname, '..', '..', '..', 'proto');

const LOADER_OPTIONS = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});

const packageCache = new Map();

// The loaded gRPC package object for `protoRoot` (cached per root).
function loadPackage(protoRoot = DEFAULT_PROTO_ROOT) {
  let pkg = packageCache.get(protoRoot);
  if (!pkg) {
    const definition = protoLoader.loadSync(
      ['kanban/v1/kanban.proto', 'grpc/health/v1/health.proto'],
      { ...LOADER_OPTIONS, includeDirs: [protoRoot] });
    pkg = grpc.loadPackageDefinition(definition);
    packageCache.set(protoRoot, pkg);
  }
  return pkg;
}

// {seconds, nanos} for a google.protobuf.Duration of `ms` milliseconds.
function durationFromMs(ms) {
  const whole = Math.floor(ms / 1000);
  return { seconds: whole, nanos: Math.round((ms - whole * 1000) * 1e6) };
}

// Milliseconds in a google.protobuf.Duration (0 when unset).
function durationToMs(d) {
  if (!d) return 0;
  return Number(d.seconds) * 1000 + Math.floor(Number(d.nanos) / 1e6);
}

// A Date for a google.protobuf.Timestamp, or null when unset.
function timestampToDate(t) {
  if (!t) return null;
  return new Date(Number(t.seconds) * 1000 + Math.floor(Number(t.nanos) / 1e6));
}

// Turns each unary method of `stub` into `name(request, options) -> Promise`.
// options: timeoutMs (deadline; default none), signal (an AbortSignal that
// cancels the call: it then rejects with CANCELLED), metadata (grpc.Metadata).
// Rejections are grpc-js ServiceErrors: `code` is the gRPC status code
// (grpc.status.*), `details` the server's message, `metadata` the trailers.
function promisify(stub, service) {
  const api = {};
  for (const [name, method] of Object.entries(service)) {
    if (method.requestStream || method.responseStream) continue;
    const camel = name[0].toLowerCase() + name.slice(1);
    api[camel] = (request = {}, options = {}) => unary(stub, camel, request, options);
  }
  return api;
}

function unary(stub, method, request, { timeoutMs, signal, metadata } = {}) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) {
      reject(cancelledError(`${method} not started: aborted`));
      return;
    }
    const callOptions = {};
    if (timeoutMs !== undefined && timeoutMs !== null) {
      callOptions.deadline = new Date(Date.now() + Math.max(1, timeoutMs));
    }
    let onAbort = null;
    const call = stub[method](request, metadata || new grpc.Metadata(), callOptions,
      (err, response) => {
        if (onAbort) signal.removeEventListener('abort', onAbort);
        if (err) reject(err); else resolve(response);
      });
    if (signal) {
      onAbort = () => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

// An Error shaped like a grpc-js ServiceError with code CANCELLED.
function cancelledError(message) {
  const err = new Error(`${grpc.status.CANCELLED} CANCELLED: ${message}`);
  err.code = grpc.status.CANCELLED;
  err.details = message;
  err.metadata = new grpc.Metadata();
  return err;
}

// Where connect() looks for a bearer token when none is given.
const TOKEN_ENV = 'KANBAN_TOKEN';
const AUTHORIZATION = 'authorization';

// `token` without surrounding whitespace (a line break read from a file
// along with it). Throws a TypeError, which never contains the token, when
// metadata cannot carry it: only visible ASCII.
function checkToken(token) {
  if (typeof token !== 'string') throw new TypeError('token must be a string');
  const trimmed = token.trim();
  if (trimmed === '') throw new TypeError('token is empty');
  if (!/^[\x21-\x7e]+$/.test(trimmed)) {
    throw new TypeError('token contains a character a bearer token cannot have ' +
      '(only visible ASCII: no spaces or line breaks)');
  }
  return trimmed;
}

// A grpc-js client interceptor that sends "authorization: Bearer <token>"
// with every call, unless the call's metadata already has an authorization
// entry (its own, e.g. a Worker's token), which then wins. An interceptor
// rather than call credentials: grpc-js attaches those only to TLS channels.
function bearerTokenInterceptor(token) {
  const value = `Bearer ${checkToken(token)}`;
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      if (metadata.get(AUTHORIZATION).length === 0) metadata.set(AUTHORIZATION, value);
      next(metadata, listener);
    },
  });
}

// Call metadata carrying `token` ('' or undefined: null, no metadata), for
// the per-call `metadata` option of the promise methods and for streams.
// A fresh object per call: gRPC may change the one it is given.
function tokenMetadata(token) {
  if (token === undefined || token === null || token === '') return null;
  const metadata = new grpc.Metadata();
  metadata.set(AUTHORIZATION, `Bearer ${checkToken(token)}`);
  return metadata;
}

// Channel options applied unless the caller overrides them. gRPC's own
// reconnect backoff grows to two minutes by default, which would add to the
// watcher's and worker's retry delays after a server restart.
const DEFAULT_CHANNEL_OPTIONS = Object.freeze({
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2000,
});

// Connects to the kanband at `address`: "host:port", or several replicas of
// one kanban whose calls are spread over them with round_robin (a replica
// that is down is skipped, so a Worker's or watch()'s retry lands on one
// that is up): 'a:7300,b:7300' with IP addresses, 'ipv4:...', 'dns:///n:p',
// or the ServerTarget that `await resolveServerAddress('name1:p,name2:p')`
// gives for a list of host names (src/address.js). Throws a TypeError
// ('server: ...') for an address it refuses. Returns:
//   kanban     promise methods of KanbanService (createTask, getTask, moveTask,
//              claimTask, ...), named lowerCamelCase;
//   heartbeat  promise methods of HeartbeatService (heartbeat, listWorkers);
//   admin      promise methods of AdminService (checkIntegrity, createToken,
//              listTokens, revokeToken; ROLE_ADMIN when auth is on);
//   health     promise methods of grpc.health.v1.Health (check);
//   stubs      the raw grpc-js clients { kanban, heartbeat, admin, health,
//              worker }, e.g. for stubs.kanban.watchEvents(request) (a
//              readable stream) or stubs.worker.work() (WorkerService.Work,
//              the duplex stream a Worker uses);
//   waitForReady(timeoutMs) resolves once the channel is connected;
//   close()    closes the shared channel.
// options: channelOptions, protoRoot, and either credentials (grpc-js
// ChannelCredentials) or the TLS settings below; without any, plaintext.
//   tlsCa      PEM file of the CA(s) to trust (default: the system's CAs);
//   tlsCert    PEM client certificate, for a kanband that requires one
//   tlsKey     (--tls_client_ca), and its key: both or neither;
//   serverName the name the server's certificate must carry instead of the
//              host in `address` (e.g. 'localhost' while dialing 127.0.0.1).
// Any of the four means TLS; the files are read now (fs errors throw).
//   token      bearer token sent with every call, for a kanband run with
//              --auth=token (a call's own authorization metadata wins).
//              Omitted (or null): $KANBAN_TOKEN; '': none. Throws a TypeError for a
//              token metadata cannot carry. Without TLS it crosses the
//              network in the clear.
// The stubs share one channel; nothing connects until the first call.
function connect(address, options = {}) {
  const pkg = loadPackage(options.protoRoot);
  const server = typeof address === 'object' && address !== null ? address : serverTarget(address);
  const channelOptions = {
    ...DEFAULT_CHANNEL_OPTIONS,
    ...targetChannelOptions(server),
    ...(options.channelOptions || {}),
  };
  const token = options.token ?? (process.env[TOKEN_ENV] || '');
  const none = typeof token === 'string' && token.trim() === '';
  const interceptors = none ? [] : [bearerTokenInterceptor(token)];
  const credentials = options.credentials || tlsCredentials(options, channelOptions);
  const v1 = pkg.kanban.v1;
  const target = server.target;
  const kanbanStub = new v1.KanbanService(target, credentials, { ...channelOptions, interceptors });
  const shared = { ...channelOptions, channelOverride: kanbanStub.getChannel(), interceptors };
  const heartbeatStub = new v1.HeartbeatService(target, credentials, shared);
  const adminStub = new v1.AdminService(target, credentials, shared);
  const healthStub = new pkg.grpc.health.v1.Health(target, credentials, shared);
  const workerStub = new v1.WorkerService(target, credentials, shared);
  return {
    address: typeof address === 'string' ? address : server.target,
    kanban: promisify(kanbanStub, v1.KanbanService.service),
    heartbeat: promisify(heartbeatStub, v1.HeartbeatService.service),
    admin: promisify(adminStub, v1.AdminService.service),
    health: promisify(healthStub, pkg.grpc.health.v1.Health.service),
    stubs: {
      kanban: kanbanStub, heartbeat: heartbeatStub, admin: adminStub, health: healthStub,
      worker: workerStub,
    },
    waitForReady(timeoutMs = 10000) {
      return new Promise((resolve, reject) => {
        kanbanStub.waitForReady(new Date(Date.now() + timeoutMs),
          (err) => (err ? reject(err) : resolve()));
      });
    },
    close() {
      kanbanStub.close();
    },
  };
}

// TLS credentials from connect()'s tlsCa/tlsCert/tlsKey/serverName (adding
// the name override to `channelOptions`), or insecure ones when none is set.
function tlsCredentials({ tlsCa, tlsCert, tlsKey, serverName }, channelOptions) {
  if (!tlsCa && !tlsCert && !tlsKey && !serverName) return grpc.credentials.createInsecure();
  if (!tlsCert !== !tlsKey) throw new Error('tlsCert and tlsKey go together');
  const read = (file) => (file ? fs.readFileSync(file) : null);
  if (serverName) channelOptions['grpc.ssl_target_name_override'] = serverName;
  return grpc.credentials.createSsl(read(tlsCa), read(tlsKey), read(tlsCert));
}

module.exports = {
  TOKEN_ENV,
  bearerTokenInterceptor,
  tokenMetadata,
  DEFAULT_PROTO_ROOT,
  LOADER_OPTIONS,
  loadPackage,
  connect,
  durationFromMs,
  durationToMs,
  timestampToDate,
  cancelledError,
};
