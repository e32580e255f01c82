// rediss:// end to end: a redis-server serving only TLS with a private CA, provisioned by the
// operator, used by a producer and a worker that trust the CA through the tls option.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { createClient } from '@redis/client';

import { ConfigError, ConnectError, Queue, Worker } from '@jobqueue/client';

import { DELIVERY } from './scenarios.js';
import { type Admin, Operator, eventually, freePort, jobQueueYaml, missingTools, track } from './support.js';

const STREAM = 'jobqueue:{default/tls}';

function certificates(dir: string): void {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=jobqueue test CA');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.crt', '-days', '1', '-extfile', 'san.cnf');
}

const skip = missingTools() ?? (execFileSyncOk('openssl', ['version']) ? false : 'missing: openssl');

function execFileSyncOk(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env['CI'] === 'true') throw new Error(`missing: ${cmd}`);
    return false;
  }
}

describe('a TLS-only Redis (rediss://) with a private CA', { skip }, () => {
  let dir: string;
  let url: string;
  let ca: Buffer;
  let admin: Admin;
  let operator: Operator | undefined;
  let server: ChildProcess | undefined;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jobqueue-ts-tls-'));
    execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > san.cnf'], { cwd: dir });
    certificates(dir);
    ca = readFileSync(join(dir, 'ca.crt'));
    const port = await freePort();
    url = `rediss://127.0.0.1:${port}`;
    server = track(
      spawn('redis-server', [
        '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--dir', dir, '--tls-cert-file', 'server.crt', '--tls-key-file', 'server.key',
        '--tls-ca-cert-file', 'ca.crt', '--tls-auth-clients', 'no',
      ], { cwd: dir, stdio: 'ignore' }),
    );
    const client = createClient({ url, RESP: 2, socket: { tls: true, ca, reconnectStrategy: 100 } });
    client.on('error', () => {});
    await eventually('redis-server answering over TLS', async () => {
      if (server?.exitCode !== null) throw new Error('redis-server exited');
      if (!client.isOpen) await client.connect();
      return String(await client.sendCommand(['PING'])) === 'PONG';
    });
    admin = { call: (_k, args) => client.sendCommand(args), close: () => client.close() };
    const manifest = jobQueueYaml('tls', DELIVERY).replace(
      'spec:\n',
      `spec:\n  redis:\n    url: ${url}\n    tls:\n      insecureSkipVerify: true\n`,
    );
    operator = await Operator.start(url, { 'tls.yaml': manifest }, [STREAM], admin);
  });
  after(async () => {
    await admin?.close();
    operator?.stop();
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('enqueues and works jobs when the CA is given', async () => {
    const q = await Queue.fromUrl(url, STREAM, { tls: { ca } });
    const w = await Worker.connect({ url, stream: STREAM }, { tls: { ca }, handler: () => 'over tls', logger: () => {}, handleSignals: false });
    const running = w.run();
    try {
      const id = await q.enqueue({});
      const job = await q.wait(id, { timeout: 15_000 });
      assert.equal(job.state, 'succeeded');
      assert.equal(job.result, 'over tls');
    } finally {
      await w.close();
      await running;
      await q.close();
    }
  });

  it('refuses a server it cannot verify, and TLS settings on a plain URL', async () => {
    await assert.rejects(Queue.fromUrl(url, STREAM, { connectTimeout: 300 }), (e: unknown) => {
      assert.ok(e instanceof ConnectError);
      assert.match(e.message, /certificate/);
      return true;
    });
    await assert.rejects(Queue.fromUrl(url.replace('rediss:', 'redis:'), STREAM, { tls: { ca } }), ConfigError);
  });
});
