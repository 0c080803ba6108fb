#!/usr/bin/env node
'use strict';
// Follows the event feed and prints each event as one JSON line, resuming by
// itself after a disconnect or a server restart. SIGINT or SIGTERM stops it
// (exit 0, the resume position on stderr); a resume point older than the
// retained history prints the error and exits 1.
//
//   node examples/watcher.js --server 127.0.0.1:7300 [--after SEQ]
//       [--board B] [--kind K ...] [--task ID ...]
//
// Without --after it shows only what happens from now on.

const { parseArgs } = require('node:util');
const { connect, watch, status } = require('../src');

const USAGE = 'usage: watcher.js [--server HOST:PORT] [--after SEQ] [--board B] [--kind K ...] [--task ID ...]';

async function main() {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', default: false },
      server: { type: 'string', default: '127.0.0.1:7300' },
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
  const client = connect(values.server);
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
