// The conformance adapter's commands, end to end on a single server (the cross-language
// harness drives the same program; this checks its output shapes and exit codes).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';

import { type Env, stream, withEnvironment } from './scenarios.js';
import { eventually, packageDir, single, track } from './support.js';

const ADAPTER = join(packageDir, 'dist/conformance-adapter.js');

function adapterEnv(env: Env, log: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    REDIS_URL: env.topology.url,
    JOBQUEUE_STREAM: stream('adapter'),
    JOBQUEUE_GROUP: 'workers',
    JOBQUEUE_CONSUMER: `adapter-${process.pid}`,
    CONFORMANCE_LOG: log,
  };
}

async function adapter(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number | null; out: unknown }> {
  const child = track(spawn(process.execPath, [ADAPTER, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(err, '', `stderr of ${args.join(' ')}`);
  return { code, out: out.trim() === '' ? undefined : JSON.parse(out) };
}

withEnvironment(
  'the conformance adapter',
  single,
  (get) => {
    it('answers enqueue, get, wait, cancel and work as the contract says', async () => {
      const env = get();
      const dir = mkdtempSync(join(tmpdir(), 'jobqueue-ts-adapter-'));
      const log = join(dir, 'log.jsonl');
      const e = adapterEnv(env, log);
      try {
        const enq = await adapter(e, 'enqueue', JSON.stringify({ payload: { action: 'progress', steps: [1, 2], result: 'r' } }));
        assert.equal(enq.code, 0);
        const id = (enq.out as { id: string }).id;
        const got = await adapter(e, 'get', id);
        assert.deepEqual(got.out, { id, state: 'queued', attempt: 1, progress: null, result: null, error: null });
        assert.equal((await adapter(e, 'get', 'nope')).out, null);
        assert.deepEqual(await adapter(e, 'wait', id, '200'), { code: 3, out: undefined });

        const worker = track(spawn(process.execPath, [ADAPTER, 'work', '{"concurrency": 2}'], { env: e, stdio: 'ignore' }));
        const exited = new Promise<number | null>((r) => worker.on('exit', (c) => r(c)));
        const done = await adapter(e, 'wait', id, '15000');
        assert.deepEqual(done, { code: 0, out: { id, state: 'succeeded', attempt: 1, progress: 2, result: 'r', error: null } });

        const waiting = (await adapter(e, 'enqueue', JSON.stringify({ payload: { action: 'wait_cancel' } }))).out as { id: string };
        await eventually('the wait_cancel job running', async () => {
          return ((await adapter(e, 'get', waiting.id)).out as { state: string }).state === 'active';
        });
        assert.deepEqual((await adapter(e, 'cancel', waiting.id)).out, { outcome: 'requested' });
        const ended = (await adapter(e, 'wait', waiting.id, '15000')).out as { result: unknown };
        assert.deepEqual(ended.result, { cancelled: true });

        worker.kill('SIGTERM');
        assert.equal(await exited, 0);
        const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
        assert.deepEqual(lines.slice(0, 2), [
          { event: 'start', id, attempt: 1, lang: 'typescript' },
          { event: 'end', id, attempt: 1, lang: 'typescript' },
        ]);
        assert.equal(lines.length, 4);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
  ['adapter'],
);
