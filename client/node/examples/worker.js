#!/usr/bin/env node
'use strict';
// A worker that claims tasks from a board and "works" on each for --work-ms,
// giving up at once if its lease is lost (an operator moved the task).
// SIGINT or SIGTERM stops claiming, lets the current task finish and report,
// and exits 0.
//
//   node examples/worker.js --server 127.0.0.1:7300 [--token T] [--board default]
//       [--worker-id ID] [--label L ...] [--max-tasks N] [--exit-when-idle]
//       [--lease-seconds 60] [--claim-wait-seconds 30] [--work-ms 100]
//
// --token T (default: $KANBAN_TOKEN) authenticates to a kanband run with
// --auth=token.
//
// Prints one JSON object per worker event: {kind, taskId, title, attempt, detail}.

const { parseArgs } = require('node:util');
const { setTimeout: delay } = require('node:timers/promises');
const { connect, Worker, defaultWorkerId, resolveServerAddress } = require('../src');

const USAGE = 'usage: worker.js [--server HOST:PORT[,HOST:PORT...]] [--token T] [--board B] [--worker-id ID] [--label L ...]\n                 [--max-tasks N] [--exit-when-idle] [--lease-seconds 60]\n                 [--claim-wait-seconds 30] [--work-ms 100]';

async function main() {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', default: false },
      server: { type: 'string', default: '127.0.0.1:7300' },
      token: { type: 'string' },
      board: { type: 'string', default: '' },
      'worker-id': { type: 'string', default: defaultWorkerId() },
      label: { type: 'string', multiple: true, default: [] },
      'max-tasks': { type: 'string', default: '0' },
      'exit-when-idle': { type: 'boolean', default: false },
      'lease-seconds': { type: 'string', default: '60' },
      'claim-wait-seconds': { type: 'string', default: '30' },
      'work-ms': { type: 'string', default: '100' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  // One address, or replicas: 'a:7300,b:7300' (host names are looked up).
  const client = connect(await resolveServerAddress(values.server), { token: values.token });
  const worker = new Worker(client, {
    board: values.board,
    workerId: values['worker-id'],
    labels: values.label,
    maxTasks: Number(values['max-tasks']),
    exitWhenIdle: values['exit-when-idle'],
    leaseMs: Number(values['lease-seconds']) * 1000,
    claimWaitMs: Number(values['claim-wait-seconds']) * 1000,
    onEvent: (event) => console.log(JSON.stringify(event)),
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => worker.stop());

  const workMs = Number(values['work-ms']);
  try {
    await worker.run(async (task, ctx) => {
      // Rejects with an AbortError if the lease is lost; the worker then
      // reports nothing, since the task is no longer ours.
      await delay(workMs, undefined, { signal: ctx.signal });
      return `${task.title}: done by ${worker.workerId}`;
    });
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(`worker: ${err.message}`);
  process.exit(1);
});
