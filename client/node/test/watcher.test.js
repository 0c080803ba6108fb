'use strict';
// The resuming watcher against a real kanband: it survives a restart of the
// server on the same database without gaps or duplicates, continues from a
// saved position, and throws OUT_OF_RANGE when that position was trimmed.

const test = require('node:test');
const assert = require('node:assert/strict');
const { connect, watch, status } = require('../src');
const { tempDir, startKanband, waitUntil } = require('../testing/kanband');

// Consumes `watcher` in the background into `seen` (event seqs).
function consume(watcher) {
  const seen = [];
  const done = (async () => {
    for await (const event of watcher) seen.push(event.seq);
  })();
  return { seen, done };
}

async function createTasks(client, n, prefix) {
  const ids = [];
  for (let i = 0; i < n; ++i) {
    ids.push((await client.kanban.createTask({ title: `${prefix} ${i}` }, { timeoutMs: 10000 })).id);
  }
  return ids;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test('a resuming watcher survives a kanband restart without gaps or duplicates',
  { timeout: 120000 }, async (t) => {
    const dir = tempDir(t);
    let server = await startKanband(dir);
    t.after(() => server.stop());
    const client = connect(server.address);
    t.after(() => client.close());

    await createTasks(client, 3, 'before');  // seq 1..3
    const retries = [];
    const watcher = watch(client, {
      afterSeq: 0, minBackoffMs: 50, maxBackoffMs: 500,
      onRetry: (err) => retries.push(err.code),
    });
    t.after(() => watcher.stop());
    const { seen, done } = consume(watcher);
    await waitUntil(() => seen.length === 3, { what: 'the first three events' });

    // Events while the watcher is connected, then a restart on the same
    // database and port; more events on the new server.
    await createTasks(client, 2, 'live');  // seq 4..5
    await waitUntil(() => seen.length === 5, { what: 'the live events' });
    const { port } = server;
    assert.equal(await server.stop(), 0);
    await waitUntil(() => retries.length > 0, { what: 'the watcher to notice the shutdown' });
    assert.ok(retries.every((code) => code === status.UNAVAILABLE || code === status.CANCELLED),
      `retry codes ${retries}`);
    server = await startKanband(dir, { port });
    await client.waitForReady(20000);
    const moved = await createTasks(client, 3, 'after');  // seq 6..8
    await client.kanban.moveTask({ taskId: moved[0], toStatus: 'DONE' });  // seq 9
    await waitUntil(() => seen.length >= 9, { what: 'the events after the restart' });

    watcher.stop();
    await done;
    assert.deepEqual(seen, range(1, 9));
    assert.equal(watcher.position, 9);

    // A new watcher from the saved position continues exactly after it.
    const next = watch(client, { afterSeq: watcher.position });
    t.after(() => next.stop());
    await client.kanban.addComment({ taskId: moved[1], author: 'test', body: 'hi' });  // seq 10
    for await (const event of next) {
      assert.equal(event.seq, 10);
      assert.equal(event.kind, 'commented');
      break;  // Ends the stream.
    }
    assert.equal(next.position, 10);
  });

test('a from-now watcher skips history; filters apply', { timeout: 60000 }, async (t) => {
  const server = await startKanband(tempDir(t));
  t.after(() => server.stop());
  const client = connect(server.address);
  t.after(() => client.close());
  await createTasks(client, 2, 'old');  // seq 1..2

  const bookmarks = [];
  const watcher = watch(client, { kinds: ['moved'], onBookmark: (p) => bookmarks.push(p) });
  t.after(() => watcher.stop());
  const events = [];
  const done = (async () => {
    for await (const event of watcher) {
      events.push(event);
      watcher.stop();
    }
  })();
  // The first response's bookmark fixes the start at the head, seq 2.
  await waitUntil(() => bookmarks.length > 0, { what: 'the first bookmark' });
  assert.equal(bookmarks[0], 2);
  const [id] = await createTasks(client, 1, 'new');  // seq 3, not a move
  await client.kanban.moveTask({ taskId: id, toStatus: 'BLOCKED' });  // seq 4
  await done;
  assert.deepEqual(events.map((e) => [e.seq, e.kind, e.task.status]), [[4, 'moved', 'BLOCKED']]);
  assert.equal(watcher.position, 4);
});

test('a trimmed resume point throws OUT_OF_RANGE with the oldest seq', { timeout: 60000 }, async (t) => {
  const server = await startKanband(tempDir(t),
    { args: ['--event_retention_count=2', '--sweep_interval=100ms'] });
  t.after(() => server.stop());
  const client = connect(server.address);
  t.after(() => client.close());
  await createTasks(client, 5, 'trimmed');  // seq 1..5; the sweep keeps 4..5

  // Retention runs on the sweeper's schedule: until it has, a watch from 0
  // still starts at seq 1.
  const err = await waitUntil(async () => {
    const watcher = watch(client, { afterSeq: 0 });
    const iterator = watcher[Symbol.asyncIterator]();
    try {
      const first = await iterator.next();
      assert.equal(first.value.seq, 1);
      return null;
    } catch (e) {
      return e;
    } finally {
      watcher.stop();
      await iterator.return();
    }
  }, { what: 'retention to trim the first events' });
  assert.equal(err.code, status.OUT_OF_RANGE, String(err));
  assert.ok(err.oldestSeq > 1 && err.oldestSeq <= 5, `oldestSeq ${err.oldestSeq}`);
  assert.match(err.details, new RegExp(String(err.oldestSeq)));
});
