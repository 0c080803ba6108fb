'use strict';
// The Worker against a real kanband, once on a Work stream (the default) and
// once on the unary calls (streams: false): a lease cancelled by an operator
// aborts the handler's signal; errors fail (and retry), PermanentError
// blocks, ReleaseError gives back; stop() drains and ends a waiting claim;
// a refused claim or stream rejects run(). test/worker_stream.test.js has
// what only a stream does.

const test = require('node:test');
const assert = require('node:assert/strict');
const {
  connect, Worker, PermanentError, ReleaseError, LeaseLostError, status,
} = require('../src');
const {
  tempDir, startKanband, waitUntil, probeWorkStreams,
} = require('../testing/kanband');

// A promise with its resolve function, for "the handler got this far".
function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

// The subtests, with Workers in one mode (`streams`).
async function workerTests(t, streams) {
  const server = await startKanband(tempDir(t), { args: ['--backoff_base=100ms', '--backoff_cap=200ms'] });
  t.after(() => server.stop());
  const client = connect(server.address);
  t.after(() => client.close());
  // A Worker on `client` (or `on`) in this test's mode.
  const newWorker = (options, on = client) => new Worker(on, { ...options, streams });

  await t.test('a lease cancelled by MoveTask to BLOCKED aborts the handler', async () => {
    const task = await client.kanban.createTask({ title: 'cancel me', labels: ['cancel'] });
    const events = [];
    const worker = newWorker({
      workerId: 'w-cancel', labels: ['cancel'], leaseMs: 3000, claimWaitMs: 10000, maxTasks: 1,
      onEvent: (e) => events.push(e),
    });
    const started = deferred();
    let abortReason = null;
    const run = worker.run(async (claimed, ctx) => {
      started.resolve(ctx);
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      abortReason = ctx.signal.reason;
      return 'must be dropped';
    });
    const ctx = await started.promise;
    assert.equal(ctx.task.id, task.id);
    assert.equal(ctx.lost, false);
    await client.kanban.moveTask({ taskId: task.id, toStatus: 'BLOCKED', reason: 'operator' });
    await run;  // The next heartbeat (a third of the lease) says LOST.

    assert.ok(abortReason instanceof LeaseLostError);
    assert.equal(abortReason.reason, 'cancelled');
    assert.deepEqual(events.map((e) => [e.kind, e.detail]), [['claimed', ''], ['lost', 'cancelled']]);
    const got = await client.kanban.getTask({ taskId: task.id });
    assert.equal(got.status, 'BLOCKED');
    assert.equal(got.result, '');
  });

  await t.test('a throw fails with retry; the next attempt completes', async () => {
    const task = await client.kanban.createTask({ title: 'flaky', labels: ['flaky'] });
    const events = [];
    const worker = newWorker({
      workerId: 'w-flaky', labels: ['flaky'], leaseMs: 5000, claimWaitMs: 10000, maxTasks: 2,
      onEvent: (e) => events.push(e),
    });
    await worker.run(async (claimed) => {
      if (claimed.attempt === 1) throw new Error('first attempt breaks');
      return { attempt: claimed.attempt };
    });
    assert.deepEqual(events.map((e) => [e.kind, e.attempt, e.detail]), [
      ['claimed', 1, ''], ['failed', 1, 'first attempt breaks'],
      ['claimed', 2, ''], ['completed', 2, ''],
    ]);
    const got = await client.kanban.getTask({ taskId: task.id });
    assert.equal(got.status, 'DONE');
    assert.equal(got.result, '{"attempt":2}');
  });

  await t.test('PermanentError blocks at once; ReleaseError gives the task back', async () => {
    const bad = await client.kanban.createTask({ title: 'bad input', labels: ['perm'] });
    const worker = newWorker({ workerId: 'w-perm', labels: ['perm'], claimWaitMs: 10000, maxTasks: 1 });
    await worker.run(async () => { throw new PermanentError('cannot parse the body'); });
    const blocked = await client.kanban.getTask({ taskId: bad.id });
    assert.equal(blocked.status, 'BLOCKED');
    assert.equal(blocked.lastError, 'cannot parse the body');

    const back = await client.kanban.createTask({ title: 'give back', labels: ['release'] });
    const events = [];
    const releaser = newWorker({
      workerId: 'w-release', labels: ['release'], claimWaitMs: 10000, maxTasks: 1,
      onEvent: (e) => events.push(e.kind),
    });
    await releaser.run(async () => { throw new ReleaseError('shutting down'); });
    assert.deepEqual(events, ['claimed', 'released']);
    // A stream's window refills at once, so kanband may be claiming the task
    // again when the stream ends; it gives that claim back just after.
    const ready = await waitUntil(async () => {
      const got = await client.kanban.getTask({ taskId: back.id });
      return got.status === 'READY' && got;
    }, { timeoutMs: 5000, what: 'the task to be READY' });
    assert.equal(ready.workerId, '');
  });

  await t.test('stop() lets the running handler finish and report it', async () => {
    const task = await client.kanban.createTask({ title: 'drain me', labels: ['drain'] });
    const worker = newWorker({ workerId: 'w-drain', labels: ['drain'], claimWaitMs: 30000 });
    const started = deferred();
    const finish = deferred();
    const run = worker.run(async (claimed, ctx) => {
      started.resolve();
      await finish.promise;
      assert.equal(ctx.stopping, true);
      return 'drained';
    });
    await started.promise;
    const stopped = worker.stop();
    finish.resolve();
    await stopped;
    await run;
    const got = await client.kanban.getTask({ taskId: task.id });
    assert.equal(got.status, 'DONE');
    assert.equal(got.result, 'drained');
  });

  await t.test('stop() cancels a claim that is waiting', { timeout: 20000 }, async () => {
    // Nothing carries this label, so the claim parks on the server for up
    // to 30 s (a stream waits for an assignment as long as it is open);
    // stop() must cut it short (the subtest's timeout is shorter).
    const waiting = deferred();
    let probe;
    if (streams) {
      // Waiting once the stream has attached.
      const probed = probeWorkStreams(client);
      probed.attached.then(() => waiting.resolve());
      probe = probed.client;
    } else {
      probe = {
        ...client,
        kanban: {
          ...client.kanban,
          claimTask: (request, options) => {
            const call = client.kanban.claimTask(request, options);
            waiting.resolve();
            return call;
          },
        },
      };
    }
    const worker = newWorker({ workerId: 'w-idle', labels: ['nothing'], claimWaitMs: 30000 }, probe);
    const run = worker.run(async () => 'never');
    try {
      await waiting.promise;
    } finally {
      await worker.stop();
    }
    await run;
  });

  await t.test('a claim the server refuses rejects run() with its code', async () => {
    const worker = newWorker({ workerId: 'w-bad', board: 'no-such-board', claimWaitMs: 0 });
    await assert.rejects(worker.run(async () => 'never'), (err) => err.code === status.NOT_FOUND);
    const nameless = newWorker({ workerId: '', claimWaitMs: 0 });
    await assert.rejects(nameless.run(async () => 'never'), (err) => err.code === status.INVALID_ARGUMENT);
  });
}

for (const streams of [true, false]) {
  test(`worker (${streams ? 'stream' : 'unary'})`, { timeout: 120000 }, (t) => workerTests(t, streams));
}
