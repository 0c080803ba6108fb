'use strict';
// connect()'s promise helpers against a real kanband: answers, and errors
// carrying the gRPC code a caller branches on.

const test = require('node:test');
const assert = require('node:assert/strict');
const { connect, status, durationToMs, timestampToDate } = require('../src');
const { tempDir, startKanband } = require('../testing/kanband');

test('client', { timeout: 60000 }, async (t) => {
  const server = await startKanband(tempDir(t));
  t.after(() => server.stop());
  const client = connect(server.address);
  t.after(() => client.close());

  await t.test('health and server info', async () => {
    assert.deepEqual(await client.health.check({ service: '' }), { status: 'SERVING' });
    const info = await client.kanban.getServerInfo({});
    assert.equal(info.journalMode.toLowerCase(), 'wal');
    assert.ok(durationToMs(info.uptime) >= 0);
  });

  await t.test('messages use lowerCamelCase, enum names and numbers', async () => {
    const parent = await client.kanban.createTask({ title: 'parent', priority: 3, labels: ['a'] });
    const child = await client.kanban.createTask({ title: 'child', parentIds: [parent.id] });
    assert.equal(child.status, 'TODO');
    assert.deepEqual(child.parentIds, [parent.id]);
    assert.equal(typeof child.version, 'number');
    assert.ok(timestampToDate(child.createdAt) instanceof Date);
    const { tasks } = await client.kanban.listTasks({ statuses: ['READY'] });
    assert.deepEqual(tasks.map((task) => task.id), [parent.id]);
  });

  await t.test('an invalid request rejects with INVALID_ARGUMENT', async () => {
    await assert.rejects(client.kanban.createTask({ title: '' }), (err) => {
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.equal(err.code, 3);
      assert.match(err.details, /title/);
      return true;
    });
  });

  await t.test('other codes: NOT_FOUND, FAILED_PRECONDITION, ABORTED, ALREADY_EXISTS', async () => {
    await assert.rejects(client.kanban.getTask({ taskId: 'no-such-task' }),
      (err) => err.code === status.NOT_FOUND);
    const task = await client.kanban.createTask({ title: 'moves' });
    await assert.rejects(client.kanban.moveTask({ taskId: task.id, toStatus: 'RUNNING' }),
      (err) => err.code === status.FAILED_PRECONDITION);
    await assert.rejects(
      client.kanban.updateTask({ taskId: task.id, title: 'x', expectedVersion: task.version + 5 }),
      (err) => err.code === status.ABORTED);
    await client.kanban.createBoard({ name: 'ops' });
    await assert.rejects(client.kanban.createBoard({ name: 'ops' }),
      (err) => err.code === status.ALREADY_EXISTS);
  });

  await t.test('an aborted signal cancels the call', async () => {
    const controller = new AbortController();
    const claim = client.kanban.claimTask(
      { workerId: 'w', board: 'ops', wait: { seconds: 30, nanos: 0 } },
      { signal: controller.signal });
    controller.abort();
    await assert.rejects(claim, (err) => err.code === status.CANCELLED);
  });
});
