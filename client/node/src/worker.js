'use strict';
// A worker for the kanban task board: claims one task at a time (long-polling
// ClaimTask with `wait`), runs an async handler on it while heartbeats keep
// its lease alive, and reports the outcome (CompleteTask, FailTask or
// ReleaseTask). The Node.js counterpart of client/cpp/worker.h.
//
//   const worker = new Worker(client, { board: 'default' });
//   process.on('SIGTERM', () => worker.stop());
//   await worker.run(async (task, ctx) => {
//     await doWork(task, { signal: ctx.signal });  // aborts if the lease is lost
//     return 'result';                             // -> CompleteTask
//   });

const os = require('node:os');
const { status } = require('@grpc/grpc-js');
const {
  durationFromMs, durationToMs, timestampToDate, tokenMetadata,
} = require('./client');
const { sleep } = require('./util');

// Codes after which the same call may succeed a moment later.
const TRANSIENT = new Set([
  status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED, status.ABORTED,
]);
const LEASE_LOST_PREFIX = 'lease lost: ';

// Thrown by a handler: FailTask with retry = false, so the task goes to
// BLOCKED at once (another attempt would fail the same way).
class PermanentError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

// Thrown by a handler: ReleaseTask, so the task is READY again at once and
// the attempt does not count (e.g. the worker is shutting down).
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
    this.task = task;    // As ClaimTask returned it (status RUNNING).
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

class Worker {
  #client;
  #options;
  #stop = new AbortController();
  #running = null;  // The promise of the current run(), if any.

  // `client` is what connect() returned. Options (all optional):
  //   workerId       names this worker in leases and ListWorkers; default
  //                  "hostname-pid".
  //   board          board to claim from; default '' (the server's default).
  //   labels         claim only tasks carrying all of these; default [].
  //   assignee       also claim tasks assigned to this name; default ''.
  //   leaseMs        lease asked for on each claim (server: 1 s to 1 h);
  //                  heartbeats renew it every third of it. Default 60000.
  //   claimWaitMs    how long one ClaimTask waits on the server (≤ 30 s).
  //                  Default 30000.
  //   rpcTimeoutMs   deadline of each call (added to claimWaitMs for claims).
  //                  Default 10000.
  //   retryDelayMs   pause after a transient failure (UNAVAILABLE, ...), and
  //                  the least time between two empty claims. Default 1000.
  //   maxTasks       run() returns after this many claimed tasks; 0: no limit.
  //   exitWhenIdle   run() returns when a claim's wait ends with nothing.
  //   onEvent        called with {kind, taskId, title, attempt, detail} for
  //                  kind claimed, completed, failed, released, lost, error.
  //   token          bearer token for this worker's calls (kanband
  //                  --auth=token), typically a worker token for workerId; it
  //                  wins over connect()'s. Default: whatever connect() sends.
  //                  Throws a TypeError if metadata cannot carry it.
  // Without a token, or with one that is unknown, revoked or not allowed to
  // claim as workerId, run() rejects with the claim's UNAUTHENTICATED or
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
      onEvent: null,
      token: '',
      ...options,
    };
  }

  // Options for one promise-method call: `extra`, plus the token, if any.
  #call(extra) {
    const metadata = tokenMetadata(this.#options.token);
    return metadata ? { ...extra, metadata } : extra;
  }

  get workerId() { return this.#options.workerId; }
  get stopping() { return this.#stop.signal.aborted; }

  // Processes tasks until stop(), maxTasks, or (exitWhenIdle) an empty claim,
  // then resolves. `handler(task, ctx)` may be async; see TaskContext. Its
  // return value completes the task (strings as they are, other values as
  // JSON); a throw fails it with the error's message, retried after the
  // server's backoff while attempts are left, unless it is a PermanentError
  // (BLOCKED at once) or a ReleaseError (READY at once, attempt not counted).
  // Rejects when ClaimTask fails with a code retrying cannot fix (NOT_FOUND
  // board, INVALID_ARGUMENT, ...), or if run() is already running.
  run(handler) {
    if (this.#running) return Promise.reject(new Error('Worker.run is already running'));
    if (typeof handler !== 'function') return Promise.reject(new TypeError('handler must be a function'));
    this.#running = this.#loop(handler).finally(() => { this.#running = null; });
    return this.#running;
  }

  // Claims nothing new and cancels a waiting claim, but lets a running
  // handler finish and reports its outcome. Resolves when run() has
  // returned (at once if it is not running). Sticky.
  stop() {
    this.#stop.abort();
    return this.#running ? this.#running.catch(() => {}) : Promise.resolve();
  }

  async #loop(handler) {
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
      await this.#process(new TaskContext(this, claimed.task, claimed.lease), handler);
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

  async #process(ctx, handler) {
    this.#emit('claimed', ctx.task, '');
    const handlerDone = new AbortController();
    const outcome = Promise.resolve()
      .then(() => handler(ctx.task, ctx))
      .then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
    outcome.then(() => handlerDone.abort());
    const heartbeats = this.#heartbeatUntilDone(ctx, handlerDone.signal);
    const result = await outcome;
    await heartbeats;
    await this.#report(ctx, result);
  }

  // Heartbeats every third of the lease until `done` aborts, marking `ctx`
  // lost when the server says so or the lease runs out unrenewed.
  async #heartbeatUntilDone(ctx, done) {
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

  async #report(ctx, outcome) {
    const o = this.#options;
    const base = { taskId: ctx.task.id, leaseToken: ctx.lease.token };
    let kind;
    let method;
    let request;
    let detail = '';
    if (outcome.ok) {
      [kind, method, request] = ['completed', 'completeTask', { ...base, result: resultText(outcome.value) }];
    } else if (outcome.error instanceof ReleaseError) {
      [kind, method, request] = ['released', 'releaseTask', base];
    } else {
      detail = errorText(outcome.error);
      const retry = !(outcome.error instanceof PermanentError);
      [kind, method, request] = ['failed', 'failTask', { ...base, error: detail, retry }];
    }
    for (;;) {
      if (ctx.lost) {
        this.#emit('lost', ctx.task, ctx.lostReason);
        return;
      }
      try {
        await this.#client.kanban[method](request, this.#call({ timeoutMs: o.rpcTimeoutMs }));
        this.#emit(kind, ctx.task, detail);
        return;
      } catch (err) {
        if (err.code === status.FAILED_PRECONDITION) {
          const message = err.details || '';
          ctx.lose(message.startsWith(LEASE_LOST_PREFIX)
            ? message.slice(LEASE_LOST_PREFIX.length) : message);
          continue;
        }
        this.#emit('error', ctx.task, `reporting ${kind}: ${err.message}`);
        // Past the lease the server would refuse anyway. stop() does not cut
        // this short, so a draining worker still reports.
        if (!TRANSIENT.has(err.code) || Date.now() >= ctx.expiresAtMs) return;
        await sleep(o.retryDelayMs);
      }
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
