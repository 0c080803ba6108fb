#!/usr/bin/env node
'use strict';
// `npm pack` puts the .proto files the client loads into the tarball:
//   node scripts/proto.js copy    (prepack)  ../../proto/... -> ./proto/...
//   node scripts/proto.js remove  (postpack) removes ./proto again
// The copy lives only while packing, so that in a checkout the client keeps
// loading the repository's proto/ and never a stale copy (src/client.js
// prefers ./proto only when it exists).

const fs = require('node:fs');
const path = require('node:path');

// What src/client.js loads, relative to a proto root.
const FILES = ['kanban/v1/kanban.proto', 'grpc/health/v1/health.proto'];
const HERE = path.resolve(__dirname, '..');
const REPO_PROTO = path.resolve(HERE, '..', '..', 'proto');
const PACKED_PROTO = path.join(HERE, 'proto');

switch (process.argv[2]) {
  case 'copy':
    fs.rmSync(PACKED_PROTO, { recursive: true, force: true });
    for (const file of FILES) {
      const to = path.join(PACKED_PROTO, file);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(path.join(REPO_PROTO, file), to);
    }
    break;
  case 'remove':
    fs.rmSync(PACKED_PROTO, { recursive: true, force: true });
    break;
  default:
    console.error('usage: node scripts/proto.js copy|remove');
    process.exit(2);
}
