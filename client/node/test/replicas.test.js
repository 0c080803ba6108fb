'use strict';
// Several kanband replicas on one PostgreSQL database behind one address
// list: connect('a,b') spreads calls over both with round_robin, and the
// channel, and a Worker on it, carry on when one replica is SIGKILLed. Also
// the address forms serverTarget() and resolveServerAddress() take.

const test = require('node:test');
const assert = require('node:assert/strict');
const { connect, serverTarget, resolveServerAddress, Worker } = require('../src');
const {
  tempDir, startKanband, newPostgresDatabase, postgresServer, POSTGRES_ENV,
} = require('../testing/kanband');

test('server addresses', async () => {
  const one = serverTarget('kanban.example:7300');
  assert.equal(one.target, 'kanban.example:7300');
  assert.equal(one.roundRobin, false);
  const list = serverTarget('127.0.0.1:7301, 127.0.0.2:7302');
  assert.equal(list.target, 'ipv4:127.0.0.1:7301,127.0.0.2:7302');
  assert.equal(list.roundRobin, true);
  assert.equal(list.authority, '127.0.0.1:7301');
  assert.equal(serverTarget('dns:///kanban.example:7300').roundRobin, true);
  const named = await resolveServerAddress('localhost:7301,127.0.0.1:7302');
  assert.match(named.target, /^ipv4:127\.0\.0\.1:7301,.*127\.0\.0\.1:7302$/);
  assert.equal(named.authority, 'localhost:7301');
  for (const [address, message] of [
    ['', 'server: the address is empty'],
    ['a:1,,b:2', 'server: "a:1,,b:2" has an empty address'],
    ['a:1,b', '"b" has no port (give host:port)'],
    ['a:1,dns:///b:2', 'a scheme (dns:, ipv4:, ...) goes first'],
    ['127.0.0.1:1,[::1]:2', 'mixes IPv4-only and IPv6-only'],
    ['127.0.0.1:1,localhost:2', '"localhost" is a host name; resolve the list first'],
  ]) {
    assert.throws(() => connect(address), (err) => err instanceof TypeError && err.message.includes(message),
      address);
  }
  await assert.rejects(resolveServerAddress('127.0.0.1:1,no-such-host.invalid:2'),
    /cannot resolve "no-such-host.invalid"/);
});

test('replicas on one PostgreSQL', {
  timeout: 120000,
  skip: postgresServer() ? false : `no PostgreSQL: run through ctest (fixture postgres), or set ${POSTGRES_ENV}`,
}, async (t) => {
  // Per subtest: two replicas on a fresh schema, one after the other (the
  // first creates the tables), and a client of both.
  async function replicas(st) {
    const db = newPostgresDatabase();
    const a = await startKanband(tempDir(st), { db, args: ['--replica_id=a'] });
    st.after(() => a.stop());
    const b = await startKanband(tempDir(st), { db, args: ['--replica_id=b'] });
    st.after(() => b.stop());
    const client = connect(`${a.address},${b.address}`);
    st.after(() => client.close());
    const replica = async () => (await client.kanban.getServerInfo({}, { timeoutMs: 5000 })).replicaId;
    // round_robin picks a replica only once its connection is up.
    const seen = new Set();
    for (let i = 0; i < 1000 && seen.size < 2; i++) seen.add(await replica());
    assert.equal(seen.size, 2, `only ${[...seen]} answered`);
    return { a, b, client, replica };
  }

  await t.test('calls spread over both and survive a kill', async (st) => {
    const { a, replica } = await replicas(st);
    const answered = [];
    for (let i = 0; i < 20; i++) answered.push(await replica());
    assert.ok(answered.filter((id) => id === 'a').length >= 5, answered.join(' '));
    assert.ok(answered.filter((id) => id === 'b').length >= 5, answered.join(' '));

    assert.equal(await a.stop('SIGKILL'), 'SIGKILL');
    // A call racing the kill may fail; soon 20 in a row succeed, on B.
    let inARow = 0;
    const failed = [];
    for (let i = 0; i < 200 && inARow < 20; i++) {
      try {
        assert.equal(await replica(), 'b');
        inARow++;
      } catch (err) {
        if (err.code === undefined) throw err;
        failed.push(err.code);
        inARow = 0;
      }
    }
    assert.equal(inARow, 20, `failures: ${failed}`);
    assert.ok(failed.length <= 2, `failures: ${failed}`);
  });

  await t.test('a worker carries on when a replica dies', async (st) => {
    const { a, b, client } = await replicas(st);
    const toB = connect(b.address);
    st.after(() => toB.close());
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await toB.kanban.createTask({ title: `t${i}` })).id);
    const handled = [];
    const worker = new Worker(client, {
      workerId: 'node-replicas', leaseMs: 10000, claimWaitMs: 1000, retryDelayMs: 100,
      rpcTimeoutMs: 5000, maxTasks: 4,
    });
    await worker.run(async (task) => {
      handled.push(task.id);
      if (handled.length === 2) await a.stop('SIGKILL');  // Mid-way, under the worker.
      return 'done';
    });
    assert.deepEqual([...handled].sort(), [...ids].sort());
    for (const id of ids) assert.equal((await toB.kanban.getTask({ taskId: id })).status, 'DONE', id);
  });
});
