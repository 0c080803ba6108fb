'use strict';
// connect() with TLS against a real kanband that requires client
// certificates (mutual TLS); the certificates are made with openssl.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { connect, status } = require('../src');
const { tempDir, startKanband } = require('../testing/kanband');

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

// Writes ca.pem, server.{pem,key} (127.0.0.1 and localhost) and
// client.{pem,key}, both signed by the CA, into `dir`; returns a function
// that names a file there.
function makeCerts(dir) {
  const f = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('/usr/bin/openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', ...EC, '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-days', '2', '-subj', '/CN=kanban test ca');
  const leaves = [['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n'],
    ['client', 'extendedKeyUsage=clientAuth\n']];
  leaves.forEach(([name, ext], i) => {
    fs.writeFileSync(f(`${name}.ext`), ext);
    openssl('req', '-new', ...EC, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`),
      '-subj', `/CN=kanban test ${name}`);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
      '-set_serial', String(i + 2), '-days', '2', '-extfile', f(`${name}.ext`),
      '-out', f(`${name}.pem`));
  });
  return f;
}

test('tls', { timeout: 60000 }, async (t) => {
  const dir = tempDir(t);
  const f = makeCerts(dir);
  const server = await startKanband(dir, {
    args: [`--tls_cert=${f('server.pem')}`, `--tls_key=${f('server.key')}`,
      `--tls_client_ca=${f('ca.pem')}`],
  });
  t.after(() => server.stop());

  await t.test('a client certificate signed by the CA is accepted', async () => {
    const client = connect(server.address, {
      tlsCa: f('ca.pem'), tlsCert: f('client.pem'), tlsKey: f('client.key'), serverName: 'localhost',
    });
    try {
      const task = await client.kanban.createTask({ title: 'over tls' }, { timeoutMs: 20000 });
      const got = await client.kanban.getTask({ taskId: task.id }, { timeoutMs: 20000 });
      assert.equal(got.title, 'over tls');
    } finally {
      client.close();
    }
  });

  await t.test('no client certificate, or no TLS, is refused', async () => {
    for (const options of [{ tlsCa: f('ca.pem'), serverName: 'localhost' }, {}]) {
      const client = connect(server.address, options);
      try {
        await assert.rejects(client.kanban.listBoards({}, { timeoutMs: 20000 }),
          (err) => err.code === status.UNAVAILABLE);
      } finally {
        client.close();
      }
    }
  });

  await t.test('tlsCert without tlsKey throws', () => {
    assert.throws(() => connect(server.address, { tlsCert: f('client.pem') }), /tlsKey/);
  });
});
