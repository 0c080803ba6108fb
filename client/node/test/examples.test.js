'use strict';
// The examples end to end, as child processes against a real kanband: the
// producer's pipeline is worked off in dependency order and the watcher
// sees every event once, in order.

const test = require('node:test');
const assert = require('node:assert/strict');
const { connect } = require('../src');
const { tempDir, startKanband, startExample, runExample } = require('../testing/kanband');

test('producer -> worker -> watcher, in dependency order', { timeout: 120000 }, async (t) => {
  const server = await startKanband(tempDir(t));
  t.after(() => server.stop());
  const client = connect(server.address);
  t.after(() => client.close());

  const watcher = startExample('watcher.js', ['--server', server.address, '--after', '0']);
  t.after(() => watcher.proc.kill('SIGKILL'));

  const produced = await runExample('producer.js', ['--server', server.address, '--run', 'r1']);
  assert.equal(produced.code, 0, produced.stderr);
  assert.equal(produced.lines.length, 5);
  const byTitle = new Map(produced.lines.map((task) => [task.title, task]));
  const idOf = (title) => byTitle.get(title).id;
  assert.equal(byTitle.get('fetch sources').status, 'READY');
  assert.equal(byTitle.get('write docs').status, 'READY');
  assert.equal(byTitle.get('build').status, 'TODO');
  assert.equal(byTitle.get('release').status, 'TODO');
  assert.deepEqual([...byTitle.get('release').parentIds].sort(),
    [idOf('unit tests'), idOf('write docs')].sort());

  // The same run again is a retry: idempotency keys return the same tasks.
  const again = await runExample('producer.js', ['--server', server.address, '--run', 'r1']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(again.lines.map((task) => task.id), produced.lines.map((task) => task.id));

  const worked = await runExample('worker.js',
    ['--server', server.address, '--max-tasks', '5', '--work-ms', '20', '--worker-id', 'node-w1']);
  assert.equal(worked.code, 0, worked.stderr);
  const completed = worked.lines.filter((e) => e.kind === 'completed').map((e) => e.taskId);
  assert.equal(completed.length, 5, JSON.stringify(worked.lines));
  assert.deepEqual(worked.lines.filter((e) => e.kind !== 'claimed' && e.kind !== 'completed'), []);

  // Every task is DONE with the handler's result.
  for (const task of produced.lines) {
    const got = await client.kanban.getTask({ taskId: task.id });
    assert.equal(got.status, 'DONE');
    assert.equal(got.result, `${task.title}: done by node-w1`);
    assert.equal(got.attempt, 1);
  }

  // The watcher sees every event once, gap-free (no filter, so seqs are
  // consecutive from 1), until the last completion.
  const allDone = (lines) =>
    new Set(lines.filter((e) => e.kind === 'completed').map((e) => e.taskId)).size === 5;
  await watcher.waitFor(allDone, { what: 'five completed events' });
  watcher.proc.kill('SIGTERM');
  const end = await watcher.exited;
  assert.equal(end.code, 0, watcher.stderr);
  const events = watcher.lines;
  assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));

  // Dependency order, from the feed: a task is claimed only after each of
  // its parents completed.
  const seqOf = (kind, id) => {
    const found = events.filter((e) => e.kind === kind && e.taskId === id);
    assert.equal(found.length, 1, `${kind} events of ${id}`);
    return found[0].seq;
  };
  for (const task of produced.lines) {
    for (const parent of task.parentIds) {
      assert.ok(seqOf('claimed', task.id) > seqOf('completed', parent),
        `${task.title} was claimed before its parent ${parent} completed`);
    }
  }
  // And the worker reported them in an order consistent with that.
  for (const task of produced.lines) {
    for (const parent of task.parentIds) {
      assert.ok(completed.indexOf(task.id) > completed.indexOf(parent));
    }
  }
});
