'use strict';
// Test support (kept out of test/, where `node --test` would run it as a
// test file): starts a real kanband, runs the examples as child processes,
// and waits for conditions.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const EXAMPLES = path.resolve(__dirname, '..', 'examples');

// The kanband binary under test; a missing KANBAND fails loudly instead of
// skipping, so a misconfigured run cannot pass.
function kanbandPath() {
  const bin = process.env.KANBAND;
  if (!bin) throw new Error('set KANBAND to the path of a kanband binary (ctest does this)');
  if (!fs.existsSync(bin)) throw new Error(`KANBAND=${bin} does not exist`);
  return bin;
}

// A fresh temporary directory, removed when the test ends.
function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kanban-node-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Resolves once `condition()` returns a truthy value (which it returns);
// rejects with `what` after `timeoutMs`. For conditions nothing signals.
async function waitUntil(condition, { timeoutMs = 20000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

// The suite's PostgreSQL (a libpq URI) from the file that
// $KANBAN_TEST_POSTGRES_FILE names (ctest's fixture `postgres` sets it), or
// null when the variable is unset.
const POSTGRES_ENV = 'KANBAN_TEST_POSTGRES_FILE';
function postgresServer() {
  const file = process.env[POSTGRES_ENV];
  if (!file) return null;
  return fs.readFileSync(file, 'utf8').trim() || null;
}

// A fresh schema on the suite's PostgreSQL (made with psql) and a URI whose
// sessions use it: a database of its own for one test, as the C++ tests'
// NewPostgresDatabase makes them.
let schemas = 0;
function newPostgresDatabase() {
  const server = postgresServer();
  if (!server) throw new Error(`no PostgreSQL: set ${POSTGRES_ENV}`);
  const name = `kanban_node_${process.pid}_${++schemas}`;
  execFileSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', server, '-c', `CREATE SCHEMA ${name}`],
    { stdio: ['ignore', 'ignore', 'inherit'], timeout: 30000 });
  return `${server}?options=-csearch_path%3D${name}`;
}

// Starts kanband on 127.0.0.1:`port` (0: any free port) with its database in
// `dir` (or `db`, e.g. a PostgreSQL URI that replicas share), and resolves
// once it serves (its --port_file is written). The result's stop() sends
// SIGTERM (or `signal`) and resolves with the exit code (or signal name).
// With `metrics`, it also serves /metrics (the result's metricsPort; see
// rpcCounts). The result's restart(signal, whileDown) stops it, awaits
// whileDown() if given, and starts it again on the same port, database and
// flags, resolving with the new result.
async function startKanband(dir, { port = 0, args = [], db = null, metrics = false } = {}) {
  const portFile = path.join(dir, 'port');
  const metricsPortFile = path.join(dir, 'metrics_port');
  fs.rmSync(portFile, { force: true });
  fs.rmSync(metricsPortFile, { force: true });
  const metricsArgs = metrics
    ? ['--metrics_listen=127.0.0.1:0', `--metrics_port_file=${metricsPortFile}`] : [];
  const proc = spawn(kanbandPath(), [
    `--listen=127.0.0.1:${port}`,
    `--db=${db || path.join(dir, 'kanban.db')}`,
    `--port_file=${portFile}`,
    ...metricsArgs,
    ...args,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal)));
  let exitCode;
  exited.then((code) => { exitCode = code; });

  const boundPort = await waitUntil(() => {
    if (exitCode !== undefined) throw new Error(`kanband exited (${exitCode}) before serving:\n${log}`);
    let text = '';
    try { text = fs.readFileSync(portFile, 'utf8').trim(); } catch { return null; }
    return /^\d+$/.test(text) ? Number(text) : null;
  }, { timeoutMs: 30000, what: 'kanband to write its port file' });
  const metricsPort = metrics ? await waitUntil(() => readPortFile(metricsPortFile),
    { timeoutMs: 30000, what: 'kanband to write its metrics port file' }) : null;

  let stopping = null;
  return {
    port: boundPort,
    address: `127.0.0.1:${boundPort}`,
    metricsPort,
    proc,
    log: () => log,
    async restart(signal = 'SIGTERM', whileDown = null) {
      await this.stop(signal);
      if (whileDown) await whileDown();
      return startKanband(dir, { port: boundPort, args, db, metrics });
    },
    stop(signal = 'SIGTERM') {
      if (!stopping) {
        if (exitCode === undefined) proc.kill(signal);
        stopping = withTimeout(exited, 30000, 'kanband to exit after SIGTERM').catch((err) => {
          proc.kill('SIGKILL');
          throw err;
        });
      }
      return stopping;
    },
  };
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// The port number in `file`, or null until kanband has written it.
function readPortFile(file) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8').trim(); } catch { return null; }
  return /^\d+$/.test(text) ? Number(text) : null;
}

// The kanban_rpcs_total counters of a kanband started with `metrics`:
// resolves with [{service, method, code, count}], e.g. {service:
// 'kanban.v1.KanbanService', method: 'ClaimTask', code: 'OK', count: 2}.
function rpcCounts(server) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.metricsPort, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(new Error(`/metrics answered ${res.statusCode}: ${body}`));
          return;
        }
        const counts = [];
        for (const line of body.split('\n')) {
          const m = /^kanban_rpcs_total\{(.*)\} (\S+)$/.exec(line);
          if (!m) continue;
          const labels = {};
          for (const [, name, value] of m[1].matchAll(/(\w+)="([^"]*)"/g)) labels[name] = value;
          const { service, method, code } = labels;
          counts.push({ service, method, code, count: Number(m[2]) });
        }
        resolve(counts);
      });
    }).on('error', reject);
  });
}

// `client` (what connect() returned) with a probe on its Work streams:
// {client, attached, responses}, where `attached` resolves once the first
// stream has received its first response (a Worker on it is waiting for a
// task), and `responses` collects every WorkResponse as the Worker gets it.
function probeWorkStreams(client) {
  let attached;
  const promise = new Promise((resolve) => { attached = resolve; });
  const responses = [];
  const work = (...args) => {
    const call = client.stubs.worker.work(...args);
    call.on('data', (response) => {
      responses.push(response);
      attached();
    });
    return call;
  };
  return {
    client: { ...client, stubs: { ...client.stubs, worker: { work } } },
    attached: promise,
    responses,
  };
}

// A TCP proxy on 127.0.0.1 to `port` (a kanband's), for breaking
// connections under a client. Resolves with {address, drop(direction),
// refuse(on), cut(), close()}: drop('up') discards what clients send from
// then on, drop('down') what they are sent, drop(null) neither; refuse(true)
// closes new connections at once; cut() closes every connection (and stops
// dropping); close() also stops listening.
function startProxy(port) {
  const pairs = new Set();
  let dropping = null;
  let refusing = false;
  const cut = () => {
    dropping = null;
    for (const pair of pairs) for (const socket of pair) socket.destroy();
    pairs.clear();
  };
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(port, '127.0.0.1');
    const pair = [client, upstream];
    pairs.add(pair);
    client.on('data', (data) => { if (dropping !== 'up') upstream.write(data); });
    upstream.on('data', (data) => { if (dropping !== 'down') client.write(data); });
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    for (const socket of pair) {
      socket.on('error', end);
      socket.on('close', end);
    }
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      address: `127.0.0.1:${server.address().port}`,
      drop(direction) { dropping = direction; },
      refuse(on) { refusing = on; },
      cut,
      close() {
        cut();
        return new Promise((done) => server.close(() => done()));
      },
    }));
  });
}

// Starts `node examples/<name> ...args`. The result collects stdout lines
// (parsed as JSON where they are), lets a test wait for a condition on them,
// and resolves `exited` with {code, signal}.
function startExample(name, args) {
  const proc = spawn(process.execPath, [path.join(EXAMPLES, name), ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const child = { proc, lines: [], stderr: '', waiters: new Set() };
  let partial = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    for (const line of parts) {
      if (line === '') continue;
      let value = line;
      try { value = JSON.parse(line); } catch { /* kept as text */ }
      child.lines.push(value);
    }
    for (const check of child.waiters) check();
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => { child.stderr += chunk; });
  let closed = false;
  child.exited = new Promise((resolve) => {
    proc.on('close', (code, signal) => {
      closed = true;
      for (const check of child.waiters) check();
      resolve({ code, signal });
    });
  });

  // Resolves once predicate(lines) is true; rejects if the process ends
  // first or after timeoutMs.
  child.waitFor = (predicate, { timeoutMs = 30000, what = 'output' } = {}) =>
    new Promise((resolve, reject) => {
      const done = (fn) => { clearTimeout(timer); child.waiters.delete(check); fn(); };
      const check = () => {
        if (predicate(child.lines)) done(resolve);
        else if (closed) done(() => reject(new Error(`${name} exited before ${what}; stderr:\n${child.stderr}`)));
      };
      const timer = setTimeout(() => done(() => reject(
        new Error(`timed out waiting for ${what} from ${name}; stderr:\n${child.stderr}`))), timeoutMs);
      child.waiters.add(check);
      check();
    });
  return child;
}

// Runs an example to its end: {code, signal, lines, stderr}.
async function runExample(name, args, { timeoutMs = 60000 } = {}) {
  const child = startExample(name, args);
  const end = await withTimeout(child.exited, timeoutMs, `${name} to exit`).catch((err) => {
    child.proc.kill('SIGKILL');
    throw err;
  });
  return { ...end, lines: child.lines, stderr: child.stderr };
}

module.exports = {
  kanbandPath,
  tempDir,
  waitUntil,
  startKanband,
  rpcCounts,
  probeWorkStreams,
  startProxy,
  startExample,
  runExample,
  withTimeout,
  postgresServer,
  newPostgresDatabase,
  POSTGRES_ENV,
};
