#!/usr/bin/env node
'use strict';
// Follows the event feed and prints each event as one JSON line, resuming by
// itself after a disconnect or a server restart. SIGINT or SIGTERM stops it
// (exit 0, the resume position on stderr); a resume point older than the
// retained history prints the error and exits 1.
//
//   node examples/watcher.js --server 127.0.0.1:7300 [--token T] [--after SEQ]
//       [--board B] [--kind K ...] [--task ID ...]
//
// --token T (default: $KANBAN_TOKEN) authenticates to a kanband run with
// --auth=token.
//
// Without --after it shows only what happens from now on.

const { parseArgs } = require('node:util');
const { connect, watch, status, resolveServerAddress } = require('../src');

const USAGE = 'usage: watcher.js [--server HOST:PORT[,HOST:PORT...]] [--token T] [--after SEQ] [--board B] [--kind K ...] [--task ID ...]';

async function main() {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', default: false },
      server: { type: 'string', default: '127.0.0.1:7300' },
      token: { type: 'string' },
      after: { type: 'string' },
      board: { type: 'string', default: '' },
      kind: { type: 'string', multiple: true, default: [] },
      task: { type: 'string', multiple: true, default: [] },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  // One address, or replicas: 'a:7300,b:7300' (host names are looked up).
  const client = connect(await resolveServerAddress(values.server), { token: values.token });
  const watcher = watch(client, {
    afterSeq: values.after === undefined ? -1 : Number(values.after),
    board: values.board,
    kinds: values.kind,
    taskIds: values.task,
    onRetry: (err, delayMs) => {
      console.error(`watcher: reconnecting in ${Math.round(delayMs)} ms ` +
        `after ${err.message} (position ${watcher.position})`);
    },
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => watcher.stop());
  try {
    for await (const event of watcher) {
      const task = event.task || {};
      console.log(JSON.stringify({
        seq: event.seq,
        kind: event.kind,
        board: event.board,
        taskId: event.taskId,
        title: task.title,
        status: task.status,
        reason: event.reason,
        principal: event.principal,
      }));
    }
    console.error(`watcher: stopped at position ${watcher.position}`);
  } catch (err) {
    if (err.code === status.OUT_OF_RANGE) {
      console.error(`watcher: history trimmed (oldest seq ${err.oldestSeq}): ${err.details}`);
    } else {
      console.error(`watcher: ${err.message}`);
    }
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(`watcher: ${err.message}`);
  process.exit(1);
});
