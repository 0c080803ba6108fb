#!/usr/bin/env node
'use strict';
// Creates a small release pipeline whose tasks depend on each other:
//
//   fetch sources -> build -> unit tests --\
//                                           +-> release
//   write docs ----------------------------/
//
// Tasks whose parents are unfinished start in TODO and become READY when the
// last parent is DONE, so workers take them in dependency order. Each task
// carries an idempotency key made from --run, so running the producer again
// with the same --run creates nothing new.
//
//   node examples/producer.js --server 127.0.0.1:7300 [--token T] [--board default] [--run NAME]
//
// --token T (default: $KANBAN_TOKEN) authenticates to a kanband run with
// --auth=token.
//
// Prints one JSON object per task: {id, title, status, parentIds}.

const { parseArgs } = require('node:util');
const crypto = require('node:crypto');
const { connect, resolveServerAddress } = require('../src');

const PIPELINE = [
  { key: 'fetch', title: 'fetch sources', priority: 5, parents: [] },
  { key: 'build', title: 'build', priority: 5, parents: ['fetch'] },
  { key: 'test', title: 'unit tests', priority: 5, parents: ['build'] },
  { key: 'docs', title: 'write docs', priority: 1, parents: [] },
  { key: 'release', title: 'release', priority: 9, parents: ['test', 'docs'] },
];

const USAGE = 'usage: producer.js [--server HOST:PORT[,HOST:PORT...]] [--token T] [--board B] [--run NAME]';

async function main() {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', default: false },
      server: { type: 'string', default: '127.0.0.1:7300' },
      token: { type: 'string' },
      board: { type: 'string', default: '' },
      run: { type: 'string', default: crypto.randomUUID() },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  // One address, or replicas: 'a:7300,b:7300' (host names are looked up).
  const client = connect(await resolveServerAddress(values.server), { token: values.token });
  try {
    const ids = new Map();
    // Parents first, so every parent id is known when its child is created.
    for (const step of PIPELINE) {
      const task = await client.kanban.createTask({
        board: values.board,
        title: step.title,
        priority: step.priority,
        parentIds: step.parents.map((key) => ids.get(key)),
        idempotencyKey: `${values.run}/${step.key}`,
      }, { timeoutMs: 10000 });
      ids.set(step.key, task.id);
      console.log(JSON.stringify({
        id: task.id, title: task.title, status: task.status, parentIds: task.parentIds,
      }));
    }
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(`producer: ${err.message}`);
  process.exit(1);
});
