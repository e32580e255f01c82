/**
 * The client's behaviour against real Redis, provisioned by the real operator. The same
 * scenarios run on a single server and on a three-node Redis Cluster (queues land on
 * different nodes there).
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { PermanentFailure, Queue, WaitTimeoutError, Worker } from '@jobqueue/client';
import type { Handler, WorkerJob } from '@jobqueue/client';

import {
  type Admin,
  type Topology,
  Operator,
  eventually,
  jobQueueYaml,
  jobStates,
  missingTools,
  packageDir,
  track,
} from './support.js';

/** Short visibility timeout (heartbeats every second), three deliveries, a short backoff. */
export const DELIVERY = `
visibilityTimeout: 2s
maxDeliveries: 3
retryBackoff:
  initial: 100ms
  max: 200ms
  multiplier: 2
`;

export const QUEUES = [
  'enqueue', 'delayed', 'idempotent', 'success', 'retry', 'dead', 'permanent', 'progress',
  'heartbeat', 'cancel-queued', 'cancel-running', 'wait', 'drain',
] as const;

export const stream = (name: string): string => `jobqueue:{default/${name}}`;

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The shared fixture of one topology: Redis, the operator serving every queue, an admin connection. */
export interface Env {
  topology: Topology;
  operator: Operator;
  admin: Admin;
  queue(name: string): Promise<Queue>;
}

export function withEnvironment(
  title: string,
  start: () => Promise<Topology>,
  body: (env: () => Env) => void,
  queueNames: readonly string[] = QUEUES,
): void {
  const skip = missingTools();
  // Each scenario has a queue of its own, so they run at the same time.
  describe(title, { skip: skip ?? false, concurrency: true }, () => {
    let env: Env | undefined;
    const queues: Queue[] = [];
    before(async () => {
      const topology = await start();
      let admin: Admin | undefined;
      try {
        admin = await topology.admin();
        const names = [...queueNames];
        const manifests = Object.fromEntries(names.map((q) => [`${q}.yaml`, jobQueueYaml(q, DELIVERY)]));
        const operator = await Operator.start(topology.url, manifests, names.map(stream), admin);
        env = {
          topology,
          operator,
          admin,
          queue: async (name) => {
            const q = await Queue.fromUrl(topology.url, stream(name));
            queues.push(q);
            return q;
          },
        };
      } catch (e) {
        await admin?.close();
        topology.stop();
        throw e;
      }
    });
    after(async () => {
      for (const q of queues) await q.close();
      if (env) {
        await env.admin.close();
        env.operator.stop();
        env.topology.stop();
      }
    });
    body(() => {
      if (!env) throw new Error('the environment did not start');
      return env;
    });
  });
}

let consumers = 0;

/** Runs an in-process worker on queue `name` for the duration of `body`. */
async function withWorker<T>(
  env: Env,
  name: string,
  handler: Handler,
  body: (w: Worker) => Promise<T>,
  concurrency = 2,
): Promise<T> {
  const w = await Worker.connect(
    { url: env.topology.url, stream: stream(name), consumer: `test-${process.pid}-${++consumers}` },
    { handler, concurrency, handleSignals: false, logger: () => {} },
  );
  const running = w.run();
  try {
    return await body(w);
  } finally {
    await w.close();
    await running;
  }
}

export function scenarios(get: () => Env): void {
  it('enqueues a job now: a UUID v7 id, queued at attempt 1, payload as JSON text in the stream', async () => {
    const env = get();
    const q = await env.queue('enqueue');
    const id = await q.enqueue({ to: 'a@example.com', n: 1 });
    assert.match(id, UUID_V7);
    const job = await q.getJob(id);
    assert.equal(job?.state, 'queued');
    assert.equal(job?.attempt, 1);
    assert.ok(job?.enqueuedAt instanceof Date);
    const entries = (await env.admin.call(q.stream, ['XRANGE', q.stream, '-', '+'])) as [string, string[]][];
    const fields = entries.map(([, f]) => f).find((f) => f[f.indexOf('id') + 1] === id);
    assert.ok(fields, 'the job is in the stream');
    assert.deepEqual(JSON.parse(fields[fields.indexOf('payload') + 1] as string), { to: 'a@example.com', n: 1 });
    assert.equal(await q.getJob('no-such-job'), null);
  });

  it('enqueues delayed jobs (delay on the Redis clock, or at a time) and runs them once due', async () => {
    const env = get();
    const q = await env.queue('delayed');
    const later = await q.enqueue({ later: true }, { delay: 60_000 });
    const job = await q.getJob(later);
    assert.equal(job?.state, 'delayed');
    const wait = (job?.due?.getTime() ?? 0) - (job?.enqueuedAt?.getTime() ?? 0);
    assert.ok(wait >= 60_000 && wait < 60_100, `due ${wait} ms after enqueue`);
    const at = Date.now() + 120_000;
    const atJob = await q.getJob(await q.enqueue({}, { at: new Date(at) }));
    assert.equal(atJob?.state, 'delayed');
    assert.equal(atJob?.due?.getTime(), at);
    await assert.rejects(q.enqueue({}, { delay: 1, at }), /at most one/);

    const soon = await q.enqueue({ soon: true }, { delay: 400 });
    const ran: string[] = [];
    await withWorker(env, 'delayed', (j) => void ran.push(j.id), async () => {
      const done = await q.wait(soon, { timeout: 15_000 });
      assert.equal(done.state, 'succeeded');
      const startedAfter = (done.startedAt?.getTime() ?? 0) - (done.enqueuedAt?.getTime() ?? 0);
      assert.ok(startedAfter >= 400, `started ${startedAfter} ms after enqueue`);
    });
    assert.deepEqual(ran, [soon], 'the 60 s and 120 s jobs are not due yet');
  });

  it('an idempotency key returns the first job\'s id and adds nothing', async () => {
    const env = get();
    const q = await env.queue('idempotent');
    const first = await q.enqueue({ order: 42 }, { idempotencyKey: 'order-42' });
    const again = await q.enqueue({ order: 42 }, { idempotencyKey: 'order-42' });
    assert.equal(again, first);
    assert.equal(Number(await env.admin.call(q.stream, ['XLEN', q.stream])), 1);
    const other = await q.enqueue({ order: 43 }, { idempotencyKey: 'order-43' });
    assert.notEqual(other, first);
    assert.equal(Number(await env.admin.call(q.stream, ['XLEN', q.stream])), 2);
  });

  it('a handler\'s return value is the result; wait blocks until the job ends', async () => {
    const env = get();
    const q = await env.queue('success');
    const id = await q.enqueue({ a: 1, b: 2 });
    const waiting = q.wait(id, { timeout: 15_000 });
    const seen: WorkerJob[] = [];
    const job = await withWorker(
      env,
      'success',
      (j) => {
        seen.push(j);
        const p = j.payload as { a: number; b: number };
        return { sum: p.a + p.b };
      },
      () => waiting,
    );
    assert.equal(job.state, 'succeeded');
    assert.equal(job.attempt, 1);
    assert.deepEqual(job.result, { sum: 3 });
    assert.ok(job.startedAt && job.finishedAt && job.startedAt <= job.finishedAt);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.id, id);
    assert.deepEqual(seen[0]?.payload, { a: 1, b: 2 });
    assert.equal(seen[0]?.attempt, 1);
  });

  it('a failure retries after the backoff: retrying, then attempt 2 succeeds', async () => {
    const env = get();
    const q = await env.queue('retry');
    const attempts: number[] = [];
    const id = await q.enqueue({ flaky: true });
    const job = await withWorker(
      env,
      'retry',
      (j) => {
        attempts.push(j.attempt);
        if (j.attempt === 1) throw new Error('flaky the first time');
        return 'ok';
      },
      () => q.wait(id, { timeout: 15_000 }),
    );
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(job.state, 'succeeded');
    assert.equal(job.attempt, 2);
    assert.equal(job.result, 'ok');
    const states = await jobStates(env.admin, q.stream, id);
    assert.ok(states.includes('retrying@2'), `states: ${states.join(', ')}`);
    assert.equal(states.at(-1), 'succeeded@2');
  });

  it('a job failing every attempt is dead after maxDeliveries, with its error', async () => {
    const env = get();
    const q = await env.queue('dead');
    const attempts: number[] = [];
    const id = await q.enqueue({});
    const job = await withWorker(
      env,
      'dead',
      (j) => {
        attempts.push(j.attempt);
        throw new Error(`broken on attempt ${j.attempt}`);
      },
      () => q.wait(id, { timeout: 15_000 }),
    );
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.equal(job.state, 'dead');
    assert.equal(job.attempt, 3);
    assert.equal(job.error, 'broken on attempt 3');
    assert.equal(await deadReason(env, 'dead'), 'max_deliveries_exceeded');
  });

  it('PermanentFailure sends the job to the dead letters at once', async () => {
    const env = get();
    const q = await env.queue('permanent');
    const attempts: number[] = [];
    const id = await q.enqueue({ to: '' });
    const job = await withWorker(
      env,
      'permanent',
      (j) => {
        attempts.push(j.attempt);
        throw new PermanentFailure('no recipient');
      },
      () => q.wait(id, { timeout: 15_000 }),
    );
    assert.deepEqual(attempts, [1]);
    assert.equal(job.state, 'dead');
    assert.equal(job.error, 'no recipient');
    assert.equal(await deadReason(env, 'permanent'), 'permanent_failure');
  });

  it('progress is readable while the job runs', async () => {
    const env = get();
    const q = await env.queue('progress');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const id = await q.enqueue({});
    const job = await withWorker(
      env,
      'progress',
      async (_j, ctx) => {
        await ctx.progress({ step: 1, of: 2 });
        await gate;
        return 'done';
      },
      async () => {
        const mid = await eventually('progress in the record', async () => {
          const j = await q.getJob(id);
          return j?.progress !== undefined && j;
        });
        assert.equal(mid.state, 'active');
        assert.deepEqual(mid.progress, { step: 1, of: 2 });
        release();
        return q.wait(id, { timeout: 15_000 });
      },
    );
    assert.equal(job.state, 'succeeded');
    assert.equal(job.result, 'done');
  });

  it('heartbeats keep a job running longer than the visibility timeout from being handed out again', async () => {
    const env = get();
    const q = await env.queue('heartbeat');
    const attempts: number[] = [];
    const id = await q.enqueue({});
    const job = await withWorker(
      env,
      'heartbeat',
      async (j) => {
        attempts.push(j.attempt);
        await new Promise((r) => setTimeout(r, 3500)); // the job's own work: well over the 2 s timeout
        return 'long';
      },
      (w) => {
        assert.equal(w.heartbeatMs, 1000);
        return q.wait(id, { timeout: 20_000 });
      },
    );
    assert.deepEqual(attempts, [1]);
    assert.equal(job.state, 'succeeded');
    assert.equal(job.attempt, 1);
    assert.deepEqual(await jobStates(env.admin, q.stream, id), ['queued@1', 'active@1', 'succeeded@1']);
  });

  it('a cancelled queued job never runs', async () => {
    const env = get();
    const q = await env.queue('cancel-queued');
    const cancelled = await q.enqueue({ n: 1 });
    assert.equal(await q.cancel(cancelled), 'cancelled');
    assert.equal((await q.getJob(cancelled))?.state, 'cancelled');
    const next = await q.enqueue({ n: 2 });
    const ran: string[] = [];
    await withWorker(env, 'cancel-queued', (j) => void ran.push(j.id), () => q.wait(next, { timeout: 15_000 }));
    assert.deepEqual(ran, [next]);
    assert.equal(await q.cancel(cancelled), 'final');
    assert.equal(await q.cancel('no-such-job'), 'missing');
  });

  it('cancelling a running job aborts the handler\'s signal; the job ends cancelled', async () => {
    const env = get();
    const q = await env.queue('cancel-running');
    let aborted = false;
    const id = await q.enqueue({});
    const job = await withWorker(
      env,
      'cancel-running',
      async (_j, ctx) => {
        await new Promise((r) => ctx.signal.addEventListener('abort', r, { once: true }));
        aborted = ctx.signal.aborted;
        throw new Error('stopped on request');
      },
      async () => {
        await eventually('the job running', async () => (await q.getJob(id))?.state === 'active');
        assert.equal(await q.cancel(id), 'requested');
        return q.wait(id, { timeout: 15_000 });
      },
    );
    assert.ok(aborted, 'the handler saw its signal aborted');
    assert.equal(job.state, 'cancelled');
    assert.equal(job.attempt, 1);
  });

  it('wait throws WaitTimeoutError when the job does not end in time', async () => {
    const env = get();
    const q = await env.queue('wait');
    const id = await q.enqueue({});
    const t0 = Date.now();
    await assert.rejects(q.wait(id, { timeout: 300 }), (e: unknown) => {
      assert.ok(e instanceof WaitTimeoutError);
      assert.equal(e.jobId, id);
      return true;
    });
    assert.ok(Date.now() - t0 >= 290);
    assert.equal((await q.getJob(id))?.state, 'queued');
  });

  it('SIGTERM: a worker process finishes the job in hand, takes no more, and exits 0', async () => {
    const env = get();
    const q = await env.queue('drain');
    const first = await q.enqueue({ ms: 1500 });
    const child = track(
      spawn(process.execPath, [join(packageDir, 'build/test/fixtures/drain-worker.js')], {
        env: {
          ...process.env,
          REDIS_URL: env.topology.url,
          JOBQUEUE_STREAM: stream('drain'),
          JOBQUEUE_CONSUMER: `drain-${process.pid}`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, s) => r([c, s])));
    await eventually(`the worker starting ${first}`, () => out.includes(`started ${first}`));
    child.kill('SIGTERM');
    const second = await q.enqueue({ ms: 0 });
    const [code, signal] = await exited;
    assert.equal(signal, null, out);
    assert.equal(code, 0, out);
    assert.ok(out.includes(`finished ${first}`), out);
    assert.equal((await q.getJob(first))?.state, 'succeeded');
    assert.equal((await q.getJob(second))?.state, 'queued', 'no job is taken after SIGTERM');
  });
}

async function deadReason(env: Env, name: string): Promise<string | undefined> {
  const dead = `${stream(name)}:dead`;
  const entries = (await env.admin.call(dead, ['XRANGE', dead, '-', '+'])) as [string, string[]][];
  assert.equal(entries.length, 1);
  const f = entries[0]?.[1] ?? [];
  return f[f.indexOf('reason') + 1];
}
