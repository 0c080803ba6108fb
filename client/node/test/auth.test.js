'use strict';
// Bearer tokens against a real kanband run with --auth=token, its admin
// token made offline (`kanband token create`): connect() with `token` or
// $KANBAN_TOKEN, Worker and watch() with their own `token`, the examples
// with --token, and calls without a token refused.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { connect, Worker, watch, status, TOKEN_ENV } = require('../src');
const {
  kanbandPath, tempDir, startKanband, startExample, runExample,
} = require('../testing/kanband');

const SECRET = /^kb_[A-Za-z0-9_-]{43}$/;

// `kanband token create --db=... FLAGS`: the secret it prints alone.
function makeTokenOffline(dir, ...flags) {
  const out = execFileSync(kanbandPath(),
    ['token', 'create', `--db=${path.join(dir, 'kanban.db')}`, ...flags],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = out.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 1, out);
  assert.match(lines[0], SECRET);
  return lines[0];
}

// Asserts that `promise` rejects with gRPC status `code`; returns the error.
async function rejectsWith(promise, code) {
  let caught = null;
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code, `${err.message}`);
    caught = err;
    return true;
  });
  return caught;
}

// The first `count` events of a watcher (then stops it).
async function take(watcher, count) {
  const events = [];
  for await (const event of watcher) {
    events.push(event);
    if (events.length >= count) break;
  }
  return events;
}

test('auth', { timeout: 180000 }, async (t) => {
  // Nothing here may pick up a token from the environment the tests run in.
  const savedEnvToken = process.env[TOKEN_ENV];
  delete process.env[TOKEN_ENV];
  t.after(() => {
    if (savedEnvToken === undefined) delete process.env[TOKEN_ENV];
    else process.env[TOKEN_ENV] = savedEnvToken;
  });

  const dir = tempDir(t);
  const adminToken = makeTokenOffline(dir, '--name=root', '--role=admin');
  const server = await startKanband(dir, { args: ['--auth=token'] });
  t.after(() => server.stop());
  const admin = connect(server.address, { token: adminToken });
  t.after(() => admin.close());
  const anonymous = connect(server.address);
  t.after(() => anonymous.close());

  let boards = 0;
  async function newBoard() {
    const board = `node-auth-${++boards}`;
    await admin.kanban.createBoard({ name: board });
    return board;
  }
  async function newToken(name, role, fields = {}) {
    const { secret, token } = await admin.admin.createToken({ name, role, ...fields });
    assert.match(secret, SECRET);
    assert.equal(token.name, name);
    return secret;
  }

  await t.test('calls without a token are UNAUTHENTICATED; health is open', async () => {
    const board = await newBoard();
    await admin.kanban.createTask({ board, title: 'nobody may claim me' });
    await rejectsWith(anonymous.kanban.listBoards({}), status.UNAUTHENTICATED);
    assert.deepEqual(await anonymous.health.check({ service: '' }), { status: 'SERVING' });

    const worker = new Worker(anonymous, { board, workerId: 'anon', claimWaitMs: 1000 });
    await rejectsWith(worker.run(async () => 'never'), status.UNAUTHENTICATED);
    await rejectsWith(take(watch(anonymous, { board, afterSeq: 0 }), 1), status.UNAUTHENTICATED);

    // A secret the server never made: refused, and not echoed back.
    const unknown = `kb_${'A'.repeat(43)}`;
    const stranger = connect(server.address, { token: unknown });
    try {
      const err = await rejectsWith(stranger.kanban.listBoards({}), status.UNAUTHENTICATED);
      assert.ok(!err.message.includes(unknown), err.message);
    } finally {
      stranger.close();
    }
  });

  await t.test('connect() reads $KANBAN_TOKEN; an explicit token wins', async () => {
    process.env[TOKEN_ENV] = `${adminToken}\n`;
    const fromEnv = connect(server.address);
    const none = connect(server.address, { token: '' });
    try {
      const { boards: list } = await fromEnv.kanban.listBoards({});
      assert.ok(list.some((b) => b.name === 'default'));
      await rejectsWith(none.kanban.listBoards({}), status.UNAUTHENTICATED);
    } finally {
      delete process.env[TOKEN_ENV];
      fromEnv.close();
      none.close();
    }
    assert.throws(() => connect(server.address, { token: 'kb_with space' }),
      (err) => err instanceof TypeError && !err.message.includes('with space'));
    assert.throws(() => new Worker(admin, { token: 'kb_line\nbreak' }), TypeError);
  });

  await t.test('a Worker with a worker token claims only as its own worker', async () => {
    const board = await newBoard();
    const workerToken = await newToken('node-w1-token', 'ROLE_WORKER', { workerId: 'node-w1' });
    const task = await admin.kanban.createTask({ board, title: 'work me' });

    const other = new Worker(anonymous, {
      board, workerId: 'node-w2', claimWaitMs: 1000, token: workerToken,
    });
    await rejectsWith(other.run(async () => 'never'), status.PERMISSION_DENIED);

    // As itself, over a client that sends the admin token: the Worker's own
    // token wins, as the events' principal shows.
    const events = [];
    const worker = new Worker(admin, {
      board, workerId: 'node-w1', leaseMs: 3000, claimWaitMs: 5000, maxTasks: 1,
      token: workerToken, onEvent: (e) => events.push(e),
    });
    await worker.run(async (claimed, ctx) => {
      // Past a heartbeat (every third of the lease), which must be allowed too.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(ctx.lost, false);
      return `done as ${ctx.lease.workerId}`;
    });
    assert.deepEqual(events.map((e) => e.kind), ['claimed', 'completed']);
    const got = await admin.kanban.getTask({ taskId: task.id });
    assert.equal(got.status, 'DONE');
    assert.equal(got.result, 'done as node-w1');

    const feed = await take(watch(admin, {
      board, afterSeq: 0, kinds: ['created', 'claimed', 'completed'],
    }), 3);
    assert.deepEqual(feed.map((e) => [e.kind, e.principal]), [
      ['created', 'root'], ['claimed', 'node-w1-token'], ['completed', 'node-w1-token'],
    ]);
  });

  await t.test('a watcher with a viewer token; viewers cannot write', async () => {
    const board = await newBoard();
    const viewerToken = await newToken('node-viewer', 'ROLE_VIEWER');
    const task = await admin.kanban.createTask({ board, title: 'watched' });
    const events = await take(watch(anonymous, {
      board, afterSeq: 0, kinds: ['created'], token: viewerToken,
    }), 1);
    assert.deepEqual(events.map((e) => [e.kind, e.taskId]), [['created', task.id]]);

    const viewer = connect(server.address, { token: viewerToken });
    try {
      assert.equal((await viewer.kanban.getTask({ taskId: task.id })).title, 'watched');
      await rejectsWith(viewer.kanban.createTask({ board, title: 'no' }), status.PERMISSION_DENIED);
      await rejectsWith(viewer.admin.listTokens({}), status.PERMISSION_DENIED);
    } finally {
      viewer.close();
    }
  });

  await t.test('revoking a token ends its watch with UNAUTHENTICATED', async () => {
    const board = await newBoard();
    const token = await newToken('node-brief', 'ROLE_VIEWER');
    const watcher = watch(anonymous, { board, afterSeq: 0, token });
    const iterator = watcher[Symbol.asyncIterator]();
    await admin.kanban.createTask({ board, title: 'before' });
    const first = await iterator.next();  // The stream is open.
    assert.equal(first.done, false);
    await admin.admin.revokeToken({ name: 'node-brief' });
    await rejectsWith((async () => {
      for (;;) {
        const { done } = await iterator.next();
        if (done) throw new Error('the watch ended without an error');
      }
    })(), status.UNAUTHENTICATED);
    const listed = await admin.admin.listTokens({ includeRevoked: true });
    const revoked = listed.tokens.find((tok) => tok.name === 'node-brief');
    assert.ok(revoked.revokedAt, JSON.stringify(revoked));
    assert.ok(!JSON.stringify(listed).includes(token));
  });

  await t.test('the examples take --token or $KANBAN_TOKEN', async (st) => {
    const board = await newBoard();
    const produced = await runExample('producer.js',
      ['--server', server.address, '--token', adminToken, '--board', board, '--run', 'auth']);
    assert.equal(produced.code, 0, produced.stderr);
    assert.equal(produced.lines.length, 5);

    const refused = await runExample('worker.js',
      ['--server', server.address, '--board', board, '--exit-when-idle', '--claim-wait-seconds', '0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /UNAUTHENTICATED/);

    // Children inherit the environment as it is when they start.
    process.env[TOKEN_ENV] = await newToken('node-example', 'ROLE_WORKER', { workerId: 'node-ex' });
    let worked;
    try {
      worked = await runExample('worker.js', ['--server', server.address, '--board', board,
        '--worker-id', 'node-ex', '--max-tasks', '5', '--work-ms', '0']);
    } finally {
      delete process.env[TOKEN_ENV];
    }
    assert.equal(worked.code, 0, worked.stderr);
    assert.equal(worked.lines.filter((e) => e.kind === 'completed').length, 5,
      JSON.stringify(worked.lines));

    const watcher = startExample('watcher.js', ['--server', server.address,
      '--token', adminToken, '--board', board, '--after', '0', '--kind', 'completed']);
    st.after(() => watcher.proc.kill('SIGKILL'));
    await watcher.waitFor((lines) => lines.length >= 5, { what: 'five completed events' });
    watcher.proc.kill('SIGTERM');
    const end = await watcher.exited;
    assert.equal(end.code, 0, watcher.stderr);
    assert.deepEqual([...new Set(watcher.lines.map((e) => e.principal))], ['node-example']);
  });
});
