'use strict';
// A worker for the kanban task board: takes one task at a time, runs an
// async handler on it while heartbeats keep its lease alive, and reports the
// outcome. The Node.js counterpart of client/cpp/worker.h.
//
// By default it works over one WorkerService.Work stream (a window of one
// lease): the server pushes assignments, heartbeats and outcomes ride on the
// stream, and a break is resumed (WorkStream below). Against a server
// without worker streams (UNIMPLEMENTED), or with `streams: false`, it
// long-polls ClaimTask and uses Heartbeat, CompleteTask, FailTask and
// ReleaseTask (UnaryLeases below). The handler sees no difference.
//
//   const worker = new Worker(client, { board: 'default' });
//   process.on('SIGTERM', () => worker.stop());
//   await worker.run(async (task, ctx) => {
//     await doWork(task, { signal: ctx.signal });  // aborts if the lease is lost
//     return 'result';                             // -> the task is DONE
//   });

const os = require('node:os');
const { Metadata, status } = require('@grpc/grpc-js');
const {
  durationFromMs, durationToMs, timestampToDate, tokenMetadata,
} = require('./client');
const { sleep } = require('./util');

// Codes after which the same call may succeed a moment later.
const TRANSIENT = new Set([
  status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED, status.ABORTED,
]);
// A Work stream that ended with one of these after it answered is resumed
// too: INTERNAL and UNKNOWN are what a cut connection looks like, CANCELLED
// (not by this worker) what a server that gave up on the stream sends.
// Before any answer they end run(): a request that cannot be serialized
// (a bad option) is INTERNAL as well.
const BROKEN_STREAM = new Set([status.INTERNAL, status.UNKNOWN, status.CANCELLED]);
const LEASE_LOST_PREFIX = 'lease lost: ';
// A stream says nothing when there is nothing to claim, so exitWhenIdle
// waits at least this long for an assignment, even with claimWaitMs 0.
const MIN_STREAM_IDLE_MS = 200;

// Thrown by a handler: the task fails with retry = false, so it goes to
// BLOCKED at once (another attempt would fail the same way).
class PermanentError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

// Thrown by a handler: the task is released, so it is READY again at once
// and the attempt does not count (e.g. the worker is shutting down).
class ReleaseError extends Error {
  constructor(message = 'released', options) {
    super(message, options);
    this.name = 'ReleaseError';
  }
}

// The reason of a handler's AbortSignal: the lease is gone. `reason` is the
// server's word for why: cancelled, expired, reclaimed, completed, ...
class LeaseLostError extends Error {
  constructor(reason) {
    super(`lease lost: ${reason}`);
    this.name = 'LeaseLostError';
    this.reason = reason;
  }
}

// "hostname-pid" for this process.
function defaultWorkerId() {
  return `${os.hostname() || 'worker'}-${process.pid}`;
}

// One claimed task as the handler sees it (its second argument).
class TaskContext {
  #worker;
  #lost = new AbortController();
  #expiresAtMs;

  constructor(worker, task, lease) {
    this.#worker = worker;
    this.task = task;    // As claimed (status RUNNING).
    this.lease = lease;  // Its expiresAt is not updated; see leaseExpiresAt.
    this.#expiresAtMs = timestampToDate(lease.expiresAt)?.getTime() ?? Date.now();
  }

  // Aborts once the lease is lost (an operator moved the task, the lease
  // expired or was reclaimed); its reason is a LeaseLostError. Whatever the
  // handler returns afterwards is dropped: the server would refuse it.
  get signal() { return this.#lost.signal; }
  get lost() { return this.#lost.signal.aborted; }
  // Why the lease was lost ('cancelled', 'expired', ...); '' while held.
  get lostReason() { return this.lost ? this.#lost.signal.reason.reason : ''; }
  // When the lease runs out unless the next heartbeat extends it.
  get leaseExpiresAt() { return new Date(this.#expiresAtMs); }
  get expiresAtMs() { return this.#expiresAtMs; }
  // True once Worker.stop() was called; the handler's outcome is still
  // reported (stop drains). Throw ReleaseError to give the task back instead.
  get stopping() { return this.#worker.stopping; }

  // Called by the Worker only: a heartbeat extended the lease.
  extend(expiresAt) { if (expiresAt) this.#expiresAtMs = expiresAt.getTime(); }
  // Called by the Worker only: the lease is gone. The first reason wins.
  lose(reason) { if (!this.lost) this.#lost.abort(new LeaseLostError(reason || 'unknown')); }
}

// What the result string of a handler's return value is.
function resultText(value) {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return JSON.stringify(value);
}

function errorText(err) {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

// What to report for a handler's result ({ok, value} or {ok: false, error}):
// {kind, detail, outcome}, where kind is the event once it is done
// (completed, failed, released), detail the event's detail, and outcome the
// oneof part of a WorkOutcome: {complete}, {fail: {error, retry}} or
// {release: true}.
function outcomeOf(result) {
  if (result.ok) {
    return { kind: 'completed', detail: '', outcome: { complete: resultText(result.value) } };
  }
  if (result.error instanceof ReleaseError) {
    return { kind: 'released', detail: '', outcome: { release: true } };
  }
  const error = errorText(result.error);
  const retry = !(result.error instanceof PermanentError);
  return { kind: 'failed', detail: error, outcome: { fail: { error, retry } } };
}

// The answers of a lease transport's settle(): the outcome committed; the
// lease was no longer the task's (reason as a heartbeat says it); or not
// done (message), worth sending again after retryDelayMs when retry is set.
const DONE = Object.freeze({ state: 'DONE' });
function lostAnswer(reason) { return { state: 'LOST', reason }; }
function errorAnswer(message, retry) { return { state: 'ERROR', message, retry }; }

// A promise that resolves once `signal` aborts.
function untilAborted(signal) {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', resolve, { once: true });
  });
}

// The unary lease transport: keeps a ClaimTask lease alive with Heartbeat
// RPCs and settles it with CompleteTask, FailTask or ReleaseTask. `call`
// gives a call's options (adding the token), `emit` reports events.
class UnaryLeases {
  #client;
  #options;
  #call;
  #emit;

  constructor(client, options, call, emit) {
    this.#client = client;
    this.#options = options;
    this.#call = call;
    this.#emit = emit;
  }

  // Heartbeats every third of the lease until `done` aborts, marking `ctx`
  // lost when the server says so or the lease runs out unrenewed. Resolves
  // then.
  async keepAlive(ctx, done) {
    const o = this.#options;
    const leaseMs = durationToMs(ctx.lease.duration) || o.leaseMs || 60000;
    const request = {
      workerId: o.workerId,
      leases: [{ taskId: ctx.task.id, leaseToken: ctx.lease.token }],
    };
    for (;;) {
      await sleep(leaseMs / 3, done);
      // A lost lease needs no more heartbeats, only the handler's end.
      if (done.aborted || ctx.lost) return;
      const expiresAtMs = ctx.expiresAtMs;
      try {
        // A heartbeat answered after the lease ran out would be no use.
        const timeoutMs = Math.max(1, Math.min(o.rpcTimeoutMs, expiresAtMs - Date.now()));
        const response = await this.#client.heartbeat.heartbeat(request, this.#call({ timeoutMs }));
        if (response.leases.length === 1) {
          const lease = response.leases[0];
          if (lease.state === 'EXTENDED') ctx.extend(timestampToDate(lease.expiresAt));
          else ctx.lose(lease.reason);
          continue;
        }
        this.#emit('error', ctx.task,
          `Heartbeat: ${response.leases.length} lease statuses for 1 lease`);
      } catch (err) {
        this.#emit('error', ctx.task, `Heartbeat: ${err.message}`);
      }
      // Without a heartbeat the server reclaims the task once the lease
      // ends; the handler should not keep working past that.
      if (Date.now() >= expiresAtMs) ctx.lose('expired');
    }
  }

  // Sends `outcome` (see outcomeOf) for ctx's lease as the matching unary
  // call; resolves with its answer (DONE, LOST or ERROR), never rejects.
  async settle(ctx, outcome) {
    const lease = { taskId: ctx.task.id, leaseToken: ctx.lease.token };
    let method = 'releaseTask';
    let request = lease;
    if ('complete' in outcome) [method, request] = ['completeTask', { ...lease, result: outcome.complete }];
    else if (outcome.fail) [method, request] = ['failTask', { ...lease, ...outcome.fail }];
    try {
      await this.#client.kanban[method](request, this.#call({ timeoutMs: this.#options.rpcTimeoutMs }));
      return DONE;
    } catch (err) {
      if (err.code !== status.FAILED_PRECONDITION) return errorAnswer(err.message, TRANSIENT.has(err.code));
      const message = err.details || '';
      return lostAnswer(message.startsWith(LEASE_LOST_PREFIX)
        ? message.slice(LEASE_LOST_PREFIX.length) : message);
    }
  }
}

// The stream lease transport: the worker's end of WorkerService.Work, one
// stream at a time with a window of one lease. It attaches, hands out the
// pushed assignments (next()), confirms each (`received`), heartbeats the
// leases it holds (an empty heartbeat while idle), applies the LOST ones to
// their TaskContext, and carries outcomes (settle()). After go_away or a
// transient break it re-opens the stream after retryDelayMs, resuming the
// old one (resume_stream_id, the held leases in the attaching heartbeat)
// and sending again the outcomes whose result never came. close() gives
// back what was not run and half-closes; a non-transient end fails it.
//
// `host` (the Worker's side) provides: options (the Worker's), metadata()
// (the call metadata, or null), emit(kind, task, detail), newContext(task,
// lease), releaseUnary(task, lease) (a promise; for assignments that can no
// longer be given back on a stream) and stopSignal.
class WorkStream {
  #stub;
  #host;
  #options;
  #call = null;             // The open call; null between streams.
  #writable = false;        // #call has attached and its writes are not ended.
  #streamId = '';           // Of the last stream that attached: the next resumes it.
  #intervalMs;              // Heartbeat interval (the server's, once attached).
  #heard = false;           // Whether any stream of this session received anything.
  #queue = [];              // Received TaskContexts not handed out yet.
  #held = new Map();        // taskId -> TaskContext, from receipt to its handler's end.
  #pending = new Map();     // opId -> {ctx, message, resolve}: outcomes without a result.
  #givenBack = new Map();   // opId -> {task, lease}: releases of assignments not run.
  #releases = new Set();    // Unary releases in flight.
  #nextOpId = 1;
  #waiter = null;           // next()'s {resolve, reject} while it waits.
  #closing = false;
  #failure = null;          // The error that ended the session, if any.
  #timers = { tick: null, idle: null, reopen: null, close: null };
  #ended;
  #resolveEnded;
  #onStop = () => this.#handOut();

  constructor(stub, host) {
    this.#stub = stub;
    this.#host = host;
    this.#options = host.options;
    this.#intervalMs = (this.#options.leaseMs || 60000) / 3;
    this.#ended = new Promise((resolve) => { this.#resolveEnded = resolve; });
  }

  // Whether anything came from the server: an UNIMPLEMENTED failure before
  // that means a server without worker streams.
  get heard() { return this.#heard; }

  // Opens the first stream.
  start() {
    this.#host.stopSignal.addEventListener('abort', this.#onStop);
    this.#startTicks();
    this.#open();
  }

  // Resolves with the next assignment to run (a TaskContext), or with null
  // when there will be none: stop(), close(), or exitWhenIdle's wait ended.
  // Rejects with the error that ended the session.
  next() {
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#handOut();
      this.#armIdle();
    });
  }

  // Keeps ctx's lease alive (heartbeats on the stream) until `done` aborts;
  // resolves then.
  async keepAlive(ctx, done) {
    await untilAborted(done);
    if (this.#held.get(ctx.task.id) === ctx) this.#held.delete(ctx.task.id);
  }

  // Sends `outcome` (see outcomeOf) for ctx's lease; resolves with the
  // answer its WorkResult gives (DONE, LOST, or ERROR: retry for
  // UNAVAILABLE), never rejects. Across a break it is sent again with the
  // same op_id once a stream attaches.
  settle(ctx, outcome) {
    if (this.#failure) return Promise.resolve(errorAnswer(this.#failure.message, false));
    return new Promise((resolve) => {
      const opId = this.#nextOpId++;
      const message = { opId, taskId: ctx.task.id, leaseToken: ctx.lease.token, ...outcome };
      this.#pending.set(opId, { ctx, message, resolve });
      this.#write({ outcomes: [message] });
    });
  }

  // Takes no more assignments: gives back those received and not run,
  // half-closes the stream and resolves once it has ended (cancelled if it
  // has not rpcTimeoutMs later) and the unary releases are answered.
  close() {
    if (!this.#closing && !this.#failure) {
      this.#closing = true;
      for (const ctx of this.#queue.splice(0)) {
        this.#held.delete(ctx.task.id);
        this.#giveBack(ctx.task, ctx.lease);
      }
      if (!this.#call) {
        this.#finish(null);
      } else {
        this.#writable = false;
        this.#call.end();
        const call = this.#call;
        this.#timers.close = setTimeout(() => call.cancel(), this.#options.rpcTimeoutMs);
      }
      this.#handOut();
    }
    return this.#ended;
  }

  #open() {
    const o = this.#options;
    this.#timers.reopen = null;
    let call;
    try {
      call = this.#stub.work(this.#host.metadata() || new Metadata());
    } catch (err) {  // The client was closed.
      this.#finish(err);
      return;
    }
    this.#call = call;
    let error = null;
    let answered = false;
    call.on('data', (response) => {
      answered = true;
      this.#onResponse(call, response);
    });
    call.on('error', (err) => { if (error === null && typeof err.code === 'number') error = err; });
    // 'status' can overtake messages still buffered in the stream, which
    // are delivered on the next ticks.
    call.on('status', () => setImmediate(() => this.#onEnd(call, error, answered)));
    const claim = { board: o.board, workerId: o.workerId, labels: o.labels, assignee: o.assignee };
    if (o.leaseMs > 0) claim.leaseDuration = durationFromMs(o.leaseMs);
    const first = { attach: { claim, maxOutstanding: 1, resumeStreamId: this.#streamId } };
    const held = this.#heldLeases(true);
    if (held.length > 0) first.heartbeat = held;
    call.write(first);
  }

  // Reads one WorkResponse of `call`.
  #onResponse(call, response) {
    if (call !== this.#call) return;
    this.#heard = true;
    if (response.attached) this.#onAttached(response.attached);
    for (const lease of response.leases) this.#onLeaseStatus(lease);
    for (const result of response.results) this.#onResult(result);
    if (response.assignments.length > 0) this.#onAssignments(response.assignments);
    // go_away: the stream ends next (UNAVAILABLE), and #onEnd resumes it.
  }

  #onAttached(attached) {
    this.#writable = !this.#closing;
    this.#streamId = attached.streamId;
    this.#intervalMs = durationToMs(attached.heartbeatInterval) || this.#intervalMs;
    this.#startTicks();
    // Outcomes whose result never came, with the same op_id: one whose
    // first try committed is answered DONE.
    const resend = [...this.#pending.values()].map((p) => p.message);
    if (resend.length > 0) this.#write({ outcomes: resend });
    this.#armIdle();
  }

  // A heartbeat's answer, or a lease the server pushes as LOST.
  #onLeaseStatus(lease) {
    const ctx = this.#contextOf(lease.taskId, lease.leaseToken);
    if (!ctx) return;
    if (lease.state === 'EXTENDED') ctx.extend(timestampToDate(lease.expiresAt));
    else ctx.lose(lease.reason);
  }

  #onResult(result) {
    if (this.#givenBack.delete(result.opId)) return;
    const pending = this.#pending.get(result.opId);
    if (!pending) return;
    this.#pending.delete(result.opId);
    if (result.state === 'DONE') pending.resolve(DONE);
    else if (result.state === 'LOST') pending.resolve(lostAnswer(result.reason));
    else {
      const name = status[result.code] || 'UNKNOWN';  // The enum maps codes to names too.
      pending.resolve(errorAnswer(`${result.code} ${name}: ${result.message}`,
        result.code === status.UNAVAILABLE));
    }
  }

  #onAssignments(assignments) {
    this.#write({ received: assignments.map((a) => a.lease.token) });
    for (const { task, lease } of assignments) {
      // A resumed stream sends again what the old one may have delivered.
      if (this.#contextOf(task.id, lease.token)) continue;
      if (this.#closing) {
        this.#giveBack(task, lease);
        continue;
      }
      const ctx = this.#host.newContext(task, lease);
      this.#held.set(task.id, ctx);
      this.#queue.push(ctx);
    }
    this.#handOut();
  }

  // Settles next()'s wait, if one waits and there is an answer.
  #handOut() {
    const waiter = this.#waiter;
    if (!waiter) return;
    // An assignment lost before it ran (an operator moved it) is dropped.
    while (this.#queue.length > 0 && this.#queue[0].lost) {
      this.#held.delete(this.#queue.shift().task.id);
    }
    if (this.#failure) waiter.reject(this.#failure);
    else if (this.#closing || this.#host.stopSignal.aborted) waiter.resolve(null);
    else if (this.#queue.length > 0) waiter.resolve(this.#queue.shift());
    else return;
    this.#waiter = null;
    this.#clearTimer('idle');
  }

  // exitWhenIdle: ends next()'s wait when no assignment comes within
  // claimWaitMs of waiting on an attached stream.
  #armIdle() {
    const o = this.#options;
    if (!o.exitWhenIdle || !this.#waiter || !this.#writable || this.#timers.idle) return;
    this.#timers.idle = setTimeout(() => {
      this.#timers.idle = null;
      const waiter = this.#waiter;
      this.#waiter = null;
      if (waiter) waiter.resolve(null);
    }, Math.max(MIN_STREAM_IDLE_MS, o.claimWaitMs));
  }

  // Every heartbeat interval: marks leases past their expiry lost, and
  // heartbeats the held ones (none: an empty heartbeat, which keeps the
  // stream alive). Between streams, an outcome whose lease ran out is given
  // up.
  #startTicks() {
    this.#clearTimer('tick');
    this.#timers.tick = setInterval(() => {
      const now = Date.now();
      for (const ctx of this.#held.values()) if (now >= ctx.expiresAtMs) ctx.lose('expired');
      if (this.#write({ heartbeat: this.#heldLeases(false) })) return;
      for (const [opId, pending] of this.#pending) {
        if (now < pending.ctx.expiresAtMs) continue;
        this.#pending.delete(opId);
        pending.resolve(errorAnswer('no Work stream before the lease ran out', false));
      }
    }, this.#intervalMs);
  }

  // The call ended (error: its ServiceError, null for OK; answered: whether
  // it received anything).
  #onEnd(call, error, answered) {
    if (call !== this.#call) return;
    this.#call = null;
    this.#writable = false;
    this.#clearTimer('idle');
    this.#clearTimer('close');
    for (const { task, lease } of this.#givenBack.values()) this.#releaseUnary(task, lease);
    this.#givenBack.clear();
    if (this.#closing) {
      this.#finish(null);
    } else if (error && !TRANSIENT.has(error.code) && !(answered && BROKEN_STREAM.has(error.code))) {
      this.#finish(error);
    } else {
      this.#host.emit('error', null, `Work: ${error ? error.message : 'the server ended the stream'}`);
      this.#timers.reopen = setTimeout(() => this.#open(), this.#options.retryDelayMs);
    }
  }

  // Ends the session (error: why, or null); resolves #ended once the unary
  // releases are answered.
  #finish(error) {
    for (const name of Object.keys(this.#timers)) this.#clearTimer(name);
    this.#host.stopSignal.removeEventListener('abort', this.#onStop);
    this.#failure = error;
    for (const pending of this.#pending.values()) {
      pending.resolve(errorAnswer(error ? error.message : 'the Work stream ended', false));
    }
    this.#pending.clear();
    this.#handOut();
    Promise.all([...this.#releases]).then(() => this.#resolveEnded());
  }

  // Gives back an assignment that will not run: a release on the stream if
  // it can still carry one, else ReleaseTask.
  #giveBack(task, lease) {
    const opId = this.#nextOpId++;
    const message = { opId, taskId: task.id, leaseToken: lease.token, release: true };
    if (this.#write({ outcomes: [message] })) this.#givenBack.set(opId, { task, lease });
    else this.#releaseUnary(task, lease);
  }

  #releaseUnary(task, lease) {
    const release = this.#host.releaseUnary(task, lease);
    this.#releases.add(release);
    release.finally(() => this.#releases.delete(release));
  }

  // Writes `message` if the stream can carry it; returns whether it did.
  #write(message) {
    if (!this.#writable) return false;
    this.#call.write(message);
    return true;
  }

  // The TaskContext holding the lease `token` on `taskId`, if any.
  #contextOf(taskId, token) {
    const held = this.#held.get(taskId);
    if (held && held.lease.token === token) return held;
    for (const pending of this.#pending.values()) {
      if (pending.message.taskId === taskId && pending.message.leaseToken === token) return pending.ctx;
    }
    return null;
  }

  // The HeldLeases of the contexts not lost: those held, and with
  // `settling` also those whose outcome awaits its result.
  #heldLeases(settling) {
    const contexts = [...this.#held.values()];
    if (settling) contexts.push(...[...this.#pending.values()].map((p) => p.ctx));
    const leases = new Map();
    for (const ctx of contexts) {
      if (!ctx.lost) leases.set(ctx.task.id, { taskId: ctx.task.id, leaseToken: ctx.lease.token });
    }
    return [...leases.values()];
  }

  #clearTimer(name) {
    clearTimeout(this.#timers[name]);  // Also clears an interval.
    this.#timers[name] = null;
  }
}

class Worker {
  #client;
  #options;
  #stop = new AbortController();
  #running = null;  // The promise of the current run(), if any.
  #unary;           // The UnaryLeases.

  // `client` is what connect() returned. Options (all optional):
  //   workerId       names this worker in leases and ListWorkers; default
  //                  "hostname-pid".
  //   board          board to claim from; default '' (the server's default).
  //   labels         claim only tasks carrying all of these; default [].
  //   assignee       also claim tasks assigned to this name; default ''.
  //   leaseMs        lease asked for on each claim (server: 1 s to 1 h);
  //                  heartbeats renew it every third of it. Default 60000.
  //   claimWaitMs    how long one ClaimTask waits on the server (≤ 30 s); on
  //                  a stream, how long exitWhenIdle waits for an assignment
  //                  (at least 200 ms). Default 30000.
  //   rpcTimeoutMs   deadline of each unary call (added to claimWaitMs for
  //                  claims), and how long a closing stream may take to end.
  //                  Default 10000.
  //   retryDelayMs   pause after a transient failure (UNAVAILABLE, a broken
  //                  stream, ...), and the least time between two empty
  //                  claims. Default 1000.
  //   maxTasks       run() returns after this many claimed tasks; 0: no limit.
  //   exitWhenIdle   run() returns when a claim's wait ends with nothing.
  //   streams        use a WorkerService.Work stream, falling back to the
  //                  unary calls if the server has none (UNIMPLEMENTED);
  //                  false: the unary calls only. Default true.
  //   onEvent        called with {kind, taskId, title, attempt, detail} for
  //                  kind claimed, completed, failed, released, lost, error.
  //   token          bearer token for this worker's calls (kanband
  //                  --auth=token), typically a worker token for workerId; it
  //                  wins over connect()'s. Default: whatever connect() sends.
  //                  Throws a TypeError if metadata cannot carry it.
  // Without a token, or with one that is unknown, revoked or not allowed to
  // claim as workerId, run() rejects with UNAUTHENTICATED or
  // PERMISSION_DENIED.
  constructor(client, options = {}) {
    this.#client = client;
    tokenMetadata(options.token);  // Throws now, not at the first call.
    this.#options = {
      workerId: defaultWorkerId(),
      board: '',
      labels: [],
      assignee: '',
      leaseMs: 60000,
      claimWaitMs: 30000,
      rpcTimeoutMs: 10000,
      retryDelayMs: 1000,
      maxTasks: 0,
      exitWhenIdle: false,
      streams: true,
      onEvent: null,
      token: '',
      ...options,
    };
    this.#unary = new UnaryLeases(client, this.#options,
      (extra) => this.#call(extra), (...event) => this.#emit(...event));
  }

  // Options for one promise-method call: `extra`, plus the token, if any.
  #call(extra) {
    const metadata = tokenMetadata(this.#options.token);
    return metadata ? { ...extra, metadata } : extra;
  }

  get workerId() { return this.#options.workerId; }
  get stopping() { return this.#stop.signal.aborted; }

  // Processes tasks until stop(), maxTasks, or (exitWhenIdle) a wait for a
  // task that ends with nothing, then resolves. `handler(task, ctx)` may be
  // async; see TaskContext. Its return value completes the task (strings as
  // they are, other values as JSON); a throw fails it with the error's
  // message, retried after the server's backoff while attempts are left,
  // unless it is a PermanentError (BLOCKED at once) or a ReleaseError (READY
  // at once, attempt not counted). Rejects when the server refuses the
  // claim or the stream with a code retrying cannot fix (NOT_FOUND board,
  // INVALID_ARGUMENT, ...), or if run() is already running.
  run(handler) {
    if (this.#running) return Promise.reject(new Error('Worker.run is already running'));
    if (typeof handler !== 'function') return Promise.reject(new TypeError('handler must be a function'));
    this.#running = this.#loop(handler).finally(() => { this.#running = null; });
    return this.#running;
  }

  // Claims nothing new and cancels a waiting claim (half-closes the stream),
  // but lets a running handler finish and reports its outcome. Resolves when
  // run() has returned (at once if it is not running). Sticky.
  stop() {
    this.#stop.abort();
    return this.#running ? this.#running.catch(() => {}) : Promise.resolve();
  }

  async #loop(handler) {
    if (this.stopping) return;
    const stub = this.#client.stubs && this.#client.stubs.worker;
    if (this.#options.streams && stub && await this.#streamLoop(handler, stub)) return;
    await this.#unaryLoop(handler);
  }

  // Runs tasks pushed on a Work stream. Resolves true when done, false when
  // the server has no worker streams (the unary loop takes over).
  async #streamLoop(handler, stub) {
    const o = this.#options;
    const stream = new WorkStream(stub, {
      options: o,
      stopSignal: this.#stop.signal,
      metadata: () => tokenMetadata(o.token),
      emit: (...event) => this.#emit(...event),
      newContext: (task, lease) => new TaskContext(this, task, lease),
      releaseUnary: (task, lease) => this.#unary.settle({ task, lease }, { release: true })
        .then((answer) => {
          if (answer.state === 'ERROR') this.#emit('error', task, `giving back: ${answer.message}`);
        }),
    });
    stream.start();
    try {
      for (let processed = 0; o.maxTasks === 0 || processed < o.maxTasks; ++processed) {
        const ctx = await stream.next();
        if (!ctx) break;
        await this.#process(ctx, handler, stream);
      }
    } catch (err) {
      if (err.code === status.UNIMPLEMENTED && !stream.heard) return false;
      throw err;
    } finally {
      await stream.close();
    }
    return true;
  }

  async #unaryLoop(handler) {
    const o = this.#options;
    for (let processed = 0; o.maxTasks === 0 || processed < o.maxTasks;) {
      if (this.stopping) break;
      let claimed;
      try {
        claimed = await this.#claim();
      } catch (err) {
        if (err.code === status.CANCELLED && this.stopping) break;
        if (!TRANSIENT.has(err.code)) throw err;
        this.#emit('error', null, `ClaimTask: ${err.message}`);
        await sleep(o.retryDelayMs, this.#stop.signal);
        continue;
      }
      if (!claimed) {
        if (o.exitWhenIdle) break;
        // A short claim wait must not turn into a busy poll of the server.
        if (o.claimWaitMs < o.retryDelayMs) {
          await sleep(o.retryDelayMs - o.claimWaitMs, this.#stop.signal);
        }
        continue;
      }
      ++processed;
      await this.#process(new TaskContext(this, claimed.task, claimed.lease), handler, this.#unary);
    }
  }

  // The ClaimTask response when a task was claimed, else null.
  async #claim() {
    const o = this.#options;
    const request = {
      board: o.board,
      workerId: o.workerId,
      labels: o.labels,
      assignee: o.assignee,
      wait: durationFromMs(o.claimWaitMs),
    };
    if (o.leaseMs > 0) request.leaseDuration = durationFromMs(o.leaseMs);
    const response = await this.#client.kanban.claimTask(request, this.#call({
      timeoutMs: o.claimWaitMs + o.rpcTimeoutMs,
      signal: this.#stop.signal,
    }));
    return response.task ? response : null;
  }

  // Runs the handler on ctx's task while `leases` (UnaryLeases or
  // WorkStream) keeps the lease alive, then reports the outcome through it.
  async #process(ctx, handler, leases) {
    this.#emit('claimed', ctx.task, '');
    const handlerDone = new AbortController();
    const outcome = Promise.resolve()
      .then(() => handler(ctx.task, ctx))
      .then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
    outcome.then(() => handlerDone.abort());
    const kept = leases.keepAlive(ctx, handlerDone.signal);
    const result = await outcome;
    await kept;
    await this.#report(ctx, result, leases);
  }

  // Reports a handler's result through `leases` and emits its event:
  // completed/failed/released, lost (nothing is reported for a lost lease),
  // or error (given up: not transient, or past the lease).
  async #report(ctx, result, leases) {
    const { kind, detail, outcome } = outcomeOf(result);
    for (;;) {
      if (ctx.lost) {
        this.#emit('lost', ctx.task, ctx.lostReason);
        return;
      }
      const answer = await leases.settle(ctx, outcome);
      if (answer.state === 'DONE') {
        this.#emit(kind, ctx.task, detail);
        return;
      }
      if (answer.state === 'LOST') {
        ctx.lose(answer.reason);
        continue;
      }
      this.#emit('error', ctx.task, `reporting ${kind}: ${answer.message}`);
      // Past the lease the server would refuse anyway. stop() does not cut
      // this short, so a draining worker still reports.
      if (!answer.retry || Date.now() >= ctx.expiresAtMs) return;
      await sleep(this.#options.retryDelayMs);
    }
  }

  #emit(kind, task, detail) {
    const onEvent = this.#options.onEvent;
    if (!onEvent) return;
    try {
      onEvent({
        kind,
        taskId: task ? task.id : '',
        title: task ? task.title : '',
        attempt: task ? task.attempt : 0,
        detail,
      });
    } catch (err) {
      // A broken observer must not stop the worker or lose a report.
      process.emitWarning(`Worker onEvent threw: ${err && err.stack ? err.stack : err}`);
    }
  }
}

module.exports = {
  Worker, TaskContext, PermanentError, ReleaseError, LeaseLostError, defaultWorkerId,
};
