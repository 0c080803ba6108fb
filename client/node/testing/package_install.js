'use strict';
// The package as a user gets it: `npm pack` here, `npm install` of the
// tarball into an empty folder, then require('kanban-client').connect()
// against a real kanband: create a task and watch its event arrive. Run by
// ctest as node_client_package_test (`node --test testing/package_install.js`;
// it lives outside test/ because it packs and installs, which the plain
// `node --test` run should not do). NPM names the npm to use (default: npm
// on PATH); it fetches the dependencies from the registry (or npm's cache).

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { tempDir, startKanband } = require('./kanband');

const NPM = process.env.NPM || 'npm';
const CLIENT_DIR = path.resolve(__dirname, '..');

// What the README tells a user to write, run by node from the install folder.
const USER_SCRIPT = `
const kanban = require('kanban-client');
(async () => {
  const client = kanban.connect(process.argv[1]);
  const watcher = kanban.watch(client, { afterSeq: 0 });
  const task = await client.kanban.createTask({ title: 'from npm' }, { timeoutMs: 10000 });
  for await (const event of watcher) {
    if (event.taskId === task.id) {
      console.log(JSON.stringify({ id: task.id, kind: event.kind, title: event.task.title,
                                   module: require.resolve('kanban-client') }));
      break;
    }
  }
  watcher.stop();
  client.close();
})().catch((err) => { console.error(err); process.exit(1); });
`;

function npm(args, cwd) {
  // execFileSync's error carries npm's output, which says what went wrong.
  return execFileSync(NPM, [...args, '--no-audit', '--no-fund'],
    { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240000 });
}

test('npm pack, npm install of the tarball, connect, create and watch',
  { timeout: 300000 }, async (t) => {
    const dir = tempDir(t);
    const packDir = path.join(dir, 'pack');
    const appDir = path.join(dir, 'app');
    fs.mkdirSync(packDir);
    fs.mkdirSync(appDir);

    npm(['pack', '--pack-destination', packDir], CLIENT_DIR);
    const tarballs = fs.readdirSync(packDir).filter((f) => /^kanban-client-.*\.tgz$/.test(f));
    assert.equal(tarballs.length, 1, `one kanban-client-*.tgz in ${fs.readdirSync(packDir)}`);
    // postpack removed the copy: a checkout keeps loading the repo's proto/.
    assert.ok(!fs.existsSync(path.join(CLIENT_DIR, 'proto')), 'client/node/proto left behind');

    const listing = execFileSync('tar', ['-tzf', path.join(packDir, tarballs[0])], { encoding: 'utf8' });
    for (const file of ['package/proto/kanban/v1/kanban.proto',
      'package/proto/grpc/health/v1/health.proto', 'package/src/index.js']) {
      assert.ok(listing.split('\n').includes(file), `${file} in the tarball:\n${listing}`);
    }

    npm(['install', path.join(packDir, tarballs[0])], appDir);

    const server = await startKanband(dir);
    t.after(() => server.stop());
    const output = await new Promise((resolve, reject) => {
      execFile(process.execPath, ['-e', USER_SCRIPT, server.address],
        { cwd: appDir, timeout: 60000 }, (error, stdout, stderr) => {
          if (error) reject(new Error(`the user's script failed: ${stderr || error.message}`));
          else resolve(stdout);
        });
    });
    const seen = JSON.parse(output);
    assert.equal(seen.kind, 'created');
    assert.equal(seen.title, 'from npm');
    assert.ok(seen.id);
    assert.equal(seen.module, path.join(fs.realpathSync(appDir), 'node_modules', 'kanban-client', 'src', 'index.js'));
  });
