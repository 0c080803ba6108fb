'use strict';
// What only a Worker on a WorkerService.Work stream does, against a real
// kanband (test/worker.test.js runs the handler contract in both modes):
// tasks come over the stream with no unary claim, heartbeat or report (the
// server's /metrics say so); an operator's move is pushed and aborts the
// handler at once; an assignment left over at maxTasks is given back (on
// the stream while it takes writes);
// exitWhenIdle; a connection broken under a worker (a proxy drops or cuts
// it) is resumed: an assignment lost in transit comes again, one sent
// again is not run twice, a received one is kept past the grace; a
// kanband restarted under a running handler is resumed and the task
// completes exactly once; a kanband without worker streams
// (--worker_streams=false) gets the unary loop.

const test = require('node:test');
const assert = require('node:assert/strict');
const { connect, Worker, watch } = require('../src');
const {
  tempDir, startKanband, startProxy, probeWorkStreams, rpcCounts, waitUntil, withTimeout,
} = require('../testing/kanband');

// A promise with its resolve function, for "the handler got this far".
function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

// How many `method` RPCs (short name, e.g. 'ClaimTask') kanband finished,
// with status `code` ('OK', ...) or any.
async function rpcCount(server, method, code = null) {
  const counts = await rpcCounts(server);
  return counts.filter((c) => c.method === method && (code === null || c.code === code))
    .reduce((sum, c) => sum + c.count, 0);
}

// The unary calls a stream replaces.
const UNARY = ['ClaimTask', 'Heartbeat', 'CompleteTask', 'FailTask', 'ReleaseTask'];

// The worker events but 'error' (a restart causes some), as [kind, detail].
function kinds(events) {
  return events.filter((e) => e.kind !== 'error').map((e) => [e.kind, e.detail]);
}

// Resolves after `ms`.
function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Resolves once the task's status is `status`; rejects after 5 s.
function statusReached(client, taskId, status) {
  return waitUntil(async () => (await client.kanban.getTask({ taskId })).status === status,
    { timeoutMs: 5000, what: `task ${taskId} to be ${status}` });
}

// The kinds of a task's events, from its creation to its completion.
async function kindsUntilCompleted(client, taskId) {
  const seen = [];
  for await (const event of watch(client, { afterSeq: 0, taskIds: [taskId] })) {
    seen.push(event.kind);
    if (event.kind === 'completed') break;
  }
  return seen;
}

const BACKOFF = ['--backoff_base=100ms', '--backoff_cap=200ms'];
// Each takes a few seconds at most; a hang fails it.
const SUBTEST = { timeout: 20000 };

test('worker streams', { timeout: 120000 }, async (t) => {
  const dir = tempDir(t);
  let server = await startKanband(dir, { metrics: true, args: BACKOFF });
  t.after(() => server.stop());
  // The address stays: a restart reuses the port.
  const client = connect(server.address);
  t.after(() => client.close());

  await t.test('tasks come over one stream: no unary claim, heartbeat or report', SUBTEST, async () => {
    const created = [];
    for (let i = 0; i < 5; ++i) {
      created.push(await client.kanban.createTask({ title: `batch ${i}`, labels: ['batch'] }));
    }
    const events = [];
    let extended = false;
    // A 3 s lease: heartbeats every second, so one task outlives two (the
    // first may leave a lease with more than half its time as it is).
    const worker = new Worker(client, {
      workerId: 'w-batch', labels: ['batch'], leaseMs: 3000, maxTasks: 5,
      onEvent: (e) => events.push(e),
    });
    await worker.run(async (task, ctx) => {
      if (task.title === 'batch 2') {
        const before = ctx.expiresAtMs;
        await delay(2500);
        extended = ctx.expiresAtMs > before && !ctx.lost;
      }
      return `done ${task.title}`;
    });

    assert.equal(extended, true, 'heartbeats on the stream extend the lease');
    assert.deepEqual(events.map((e) => [e.kind, e.taskId]),
      created.flatMap((c) => [['claimed', c.id], ['completed', c.id]]));
    for (const c of created) {
      const got = await client.kanban.getTask({ taskId: c.id });
      assert.equal(got.status, 'DONE');
      assert.equal(got.attempt, 1);
      assert.equal(got.result, `done ${c.title}`);
    }
    for (const method of UNARY) assert.equal(await rpcCount(server, method), 0, method);
    assert.equal(await rpcCount(server, 'Work', 'OK'), 1);
  });

  await t.test("an operator's move is pushed: the handler aborts before any heartbeat", SUBTEST, async () => {
    const task = await client.kanban.createTask({ title: 'move me', labels: ['pushed'] });
    const events = [];
    // A 30 s lease: the first heartbeat would be 10 s away.
    const worker = new Worker(client, {
      workerId: 'w-pushed', labels: ['pushed'], leaseMs: 30000, maxTasks: 1,
      onEvent: (e) => events.push(e),
    });
    const started = deferred();
    let abortedAfterMs = null;
    let movedAt = 0;
    const run = worker.run(async (claimed, ctx) => {
      started.resolve();
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      abortedAfterMs = Date.now() - movedAt;
      return 'must be dropped';
    });
    await started.promise;
    movedAt = Date.now();
    await client.kanban.moveTask({ taskId: task.id, toStatus: 'BLOCKED', reason: 'operator' });
    await run;
    assert.ok(abortedAfterMs < 3000, `aborted ${abortedAfterMs} ms after the move`);
    assert.deepEqual(kinds(events), [['claimed', ''], ['lost', 'cancelled']]);
    const got = await client.kanban.getTask({ taskId: task.id });
    assert.equal(got.status, 'BLOCKED');
    assert.equal(got.result, '');
  });

  await t.test('maxTasks: an assignment pushed after the last task is given back', SUBTEST, async () => {
    const first = await client.kanban.createTask({ title: 'take me', labels: ['window'] });
    const second = await client.kanban.createTask({ title: 'leave me', labels: ['window'] });
    const events = [];
    const worker = new Worker(client, {
      workerId: 'w-window', labels: ['window'], maxTasks: 1, onEvent: (e) => events.push(e),
    });
    // The outcome commits, the window has room: the server pushes `second`.
    await worker.run(async () => 'taken');
    assert.deepEqual(events.map((e) => [e.kind, e.taskId]), [['claimed', first.id], ['completed', first.id]]);
    assert.equal((await client.kanban.getTask({ taskId: first.id })).status, 'DONE');
    // Back within moments, not when its lease runs out in a minute (kanband
    // gives back a claim still in flight when a stream ends just after it).
    const left = await waitUntil(async () => {
      const got = await client.kanban.getTask({ taskId: second.id });
      return got.status === 'READY' && got;
    }, { timeoutMs: 5000, what: 'the left-over task to be READY' });
    assert.equal(left.workerId, '');
    assert.equal(left.attempt, 0, 'a given-back attempt does not count');
  });

  await t.test('an assignment queued behind the last task is given back on the stream', SUBTEST, async () => {
    const first = await client.kanban.createTask({ title: 'moved away', labels: ['queued'] });
    const events = [];
    const probe = probeWorkStreams(client);
    const worker = new Worker(probe.client, {
      workerId: 'w-queued', labels: ['queued'], maxTasks: 1, onEvent: (e) => events.push(e),
    });
    let second = null;
    const releasesBefore = await rpcCount(server, 'ReleaseTask');
    await worker.run(async (task, ctx) => {
      second = await client.kanban.createTask({ title: 'queued', labels: ['queued'] });
      await client.kanban.moveTask({ taskId: task.id, toStatus: 'BLOCKED', reason: 'operator' });
      // The pushed LOST makes room in the window: `second` comes while
      // this handler still runs, and waits in the worker's queue.
      const pushed = (r) => r.assignments.some((a) => a.task.id === second.id);
      await waitUntil(() => probe.responses.some(pushed),
        { timeoutMs: 5000, what: 'the second assignment to reach the worker' });
      assert.equal(ctx.lost, true);
    });
    assert.deepEqual(kinds(events), [['claimed', ''], ['lost', 'cancelled']]);
    assert.equal(events[0].taskId, first.id);
    await statusReached(client, second.id, 'READY');
    const left = await client.kanban.getTask({ taskId: second.id });
    assert.equal(left.attempt, 0, 'a given-back attempt does not count');
    assert.equal(await rpcCount(server, 'ReleaseTask'), releasesBefore, 'released on the stream');
  });

  await t.test('exitWhenIdle: run() returns when nothing is pushed within claimWaitMs', SUBTEST, async () => {
    const task = await client.kanban.createTask({ title: 'last one', labels: ['idle'] });
    const events = [];
    const worker = new Worker(client, {
      workerId: 'w-idle', labels: ['idle'], claimWaitMs: 300, exitWhenIdle: true,
      onEvent: (e) => events.push(e),
    });
    try {
      await withTimeout(worker.run(async () => 'ok'), 5000, 'run() to return once idle');
    } finally {
      worker.stop();
    }
    assert.deepEqual(events.map((e) => [e.kind, e.taskId]), [['claimed', task.id], ['completed', task.id]]);
  });

  // Connections through a proxy can be broken while kanband stays up.
  const proxy = await startProxy(server.port);
  t.after(() => proxy.close());
  const viaProxy = connect(proxy.address);
  t.after(() => viaProxy.close());
  // A Worker on viaProxy (probed: see probeWorkStreams) for tasks labelled `name`.
  function proxiedWorker(name, events, options = {}) {
    const probe = probeWorkStreams(viaProxy);
    const worker = new Worker(probe.client, {
      workerId: `w-${name}`, labels: [name], leaseMs: 6000, retryDelayMs: 100, maxTasks: 1,
      onEvent: (e) => events.push(e), ...options,
    });
    return { worker, attached: probe.attached };
  }

  await t.test('a stream cut before its assignment arrived is resumed with it', SUBTEST, async () => {
    const events = [];
    const { worker, attached } = proxiedWorker('in-transit', events);
    const run = worker.run(async (task) => `resumed ${task.title}`);
    await attached;
    proxy.drop('down');
    const task = await client.kanban.createTask({ title: 'in transit', labels: ['in-transit'] });
    await statusReached(client, task.id, 'RUNNING');
    await delay(200);  // kanband writes the assignment into the dropping connection.
    proxy.cut();
    await withTimeout(run, 10000, 'run() to return');
    assert.deepEqual(kinds(events), [['claimed', ''], ['completed', '']]);
    assert.equal((await client.kanban.getTask({ taskId: task.id })).result, 'resumed in transit');
    // The resumed stream took it over: not released after the grace and claimed again.
    assert.deepEqual(await kindsUntilCompleted(client, task.id), ['created', 'claimed', 'completed']);
  });

  await t.test('an assignment sent again on a resumed stream is not run twice', SUBTEST, async () => {
    const events = [];
    // exitWhenIdle: runs what comes (a second copy too), then returns.
    const { worker, attached } = proxiedWorker('twice', events,
      { maxTasks: 2, exitWhenIdle: true, claimWaitMs: 500 });
    const started = deferred();
    const finish = deferred();
    let runs = 0;
    const run = worker.run(async (task, ctx) => {
      ++runs;
      started.resolve(ctx);
      await finish.promise;
      return 'once';
    });
    try {
      await attached;
      proxy.drop('up');  // The worker's `received` never arrives.
      const task = await client.kanban.createTask({ title: 'twice', labels: ['twice'] });
      const ctx = await started.promise;
      const expiresBefore = ctx.expiresAtMs;
      proxy.cut();
      // Re-attached: its heartbeat extended the lease, and kanband sent the
      // unconfirmed assignment again in the same message.
      await waitUntil(() => ctx.expiresAtMs > expiresBefore,
        { timeoutMs: 5000, what: 'the worker to re-attach' });
      finish.resolve();
      await withTimeout(run, 10000, 'run() to return');
      assert.equal(runs, 1);
      assert.deepEqual(kinds(events), [['claimed', ''], ['completed', '']]);
      assert.deepEqual(await kindsUntilCompleted(client, task.id), ['created', 'claimed', 'completed']);
    } finally {
      finish.resolve();
    }
  });

  await t.test('a received assignment outlives a break longer than the resume grace', SUBTEST, async () => {
    const events = [];
    // A 6 s lease: heartbeat interval and resume grace 2 s.
    const { worker, attached } = proxiedWorker('confirmed', events);
    const started = deferred();
    const finish = deferred();
    const run = worker.run(async (task, ctx) => {
      started.resolve(ctx);
      await finish.promise;
      return 'kept';
    });
    try {
      await attached;
      const task = await client.kanban.createTask({ title: 'confirmed', labels: ['confirmed'] });
      const ctx = await started.promise;
      const expiresBefore = ctx.expiresAtMs;
      // Cut before the first heartbeat, once `received` (sent at once) is
      // through: only it confirmed the assignment.
      await delay(200);
      proxy.refuse(true);
      proxy.cut();
      await delay(2600);
      // An unconfirmed assignment would be back to READY past the grace.
      assert.equal((await client.kanban.getTask({ taskId: task.id })).status, 'RUNNING');
      proxy.refuse(false);
      await waitUntil(() => ctx.expiresAtMs > expiresBefore,
        { timeoutMs: 5000, what: 'the worker to re-attach' });
      finish.resolve();
      await withTimeout(run, 10000, 'run() to return');
      assert.deepEqual(kinds(events), [['claimed', ''], ['completed', '']]);
      assert.deepEqual(await kindsUntilCompleted(client, task.id), ['created', 'claimed', 'completed']);
    } finally {
      proxy.refuse(false);
      finish.resolve();
    }
  });

  // Restarts kanband (stopped with `signal`) under a running handler, which
  // returns while no stream is open (`finishWhileDown`: its outcome waits
  // for a stream to attach again) or once the re-attaching message's
  // heartbeat extended its lease, and checks that the task was completed
  // once, by that handler.
  async function restartUnderHandler(name, signal, { finishWhileDown }) {
    const task = await client.kanban.createTask({ title: name, labels: [name] });
    const events = [];
    // A 9 s lease: the periodic heartbeats come every 3 s.
    const worker = new Worker(client, {
      workerId: `w-${name}`, labels: [name], leaseMs: 9000, retryDelayMs: 100, maxTasks: 1,
      onEvent: (e) => events.push(e),
    });
    const started = deferred();
    const finish = deferred();
    const run = worker.run(async (claimed, ctx) => {
      started.resolve(ctx);
      await finish.promise;
      return `survived ${signal}`;
    });
    const broken = () => events.some((e) => e.kind === 'error' && e.detail.startsWith('Work: '));
    let ctx;
    try {
      ctx = await started.promise;
      const expiresBefore = ctx.expiresAtMs;
      server = await server.restart(signal, async () => {
        if (!finishWhileDown) return;
        await waitUntil(broken, { timeoutMs: 5000, what: 'the worker to see the break' });
        finish.resolve();
        // The outcome waits while the re-opened streams fail.
        await delay(300);
      });
      if (!finishWhileDown) {
        // Well before the first periodic heartbeat on the new stream.
        await waitUntil(() => ctx.expiresAtMs > expiresBefore,
          { timeoutMs: 2000, what: 'the re-attaching heartbeat to extend the lease' });
      }
    } finally {
      finish.resolve();  // A failure above must not leave the worker running.
    }
    await run;
    assert.equal(ctx.lost, false);
    assert.deepEqual(kinds(events), [['claimed', ''], ['completed', '']]);
    assert.ok(broken(), 'the break is reported');
    const got = await client.kanban.getTask({ taskId: task.id });
    assert.equal(got.status, 'DONE');
    assert.equal(got.attempt, 1);
    assert.equal(got.result, `survived ${signal}`);
    // Claimed and completed once: no reclaim, release or second claim.
    assert.deepEqual(await kindsUntilCompleted(client, task.id), ['created', 'claimed', 'completed']);
  }

  await t.test('kanband stopped (go_away) under a handler: resumed, completed once', SUBTEST, async () => {
    await restartUnderHandler('restart-term', 'SIGTERM', { finishWhileDown: false });
    for (const method of UNARY) assert.equal(await rpcCount(server, method), 0, method);
  });

  await t.test('kanband killed, the handler returns while it is down: reported after', SUBTEST, async () => {
    await restartUnderHandler('restart-kill', 'SIGKILL', { finishWhileDown: true });
    for (const method of UNARY) assert.equal(await rpcCount(server, method), 0, method);
  });
});

test('a kanband without worker streams gets the unary loop', { timeout: 60000 }, async (t) => {
  const server = await startKanband(tempDir(t), { metrics: true, args: ['--worker_streams=false'] });
  t.after(() => server.stop());
  const client = connect(server.address);
  t.after(() => client.close());

  const a = await client.kanban.createTask({ title: 'a' });
  const b = await client.kanban.createTask({ title: 'b' });
  const events = [];
  const worker = new Worker(client, { workerId: 'w-old', maxTasks: 2, onEvent: (e) => events.push(e) });
  await worker.run(async (task) => `unary ${task.title}`);
  assert.deepEqual(events.map((e) => [e.kind, e.taskId]),
    [['claimed', a.id], ['completed', a.id], ['claimed', b.id], ['completed', b.id]]);
  assert.equal((await client.kanban.getTask({ taskId: b.id })).result, 'unary b');
  assert.equal(await rpcCount(server, 'Work', 'UNIMPLEMENTED'), 1);
  assert.equal(await rpcCount(server, 'ClaimTask', 'OK'), 2);
  assert.equal(await rpcCount(server, 'CompleteTask', 'OK'), 2);
});
