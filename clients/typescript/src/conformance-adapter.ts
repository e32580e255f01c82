/**
 * The conformance adapter: the shared client contract's commands, run by the conformance
 * harness. Configured by REDIS_URL, JOBQUEUE_STREAM, JOBQUEUE_GROUP, JOBQUEUE_CONSUMER and
 * CONFORMANCE_LOG. Usage:
 *   conformance-adapter enqueue '<json>' | get <id> | wait <id> <timeout_ms> | cancel <id> | work '<json>'
 * Exit codes: 0 done, 3 wait timed out, 2 bad usage, 1 any other error.
 */

import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { Queue, Worker, PermanentFailure, WaitTimeoutError, JobNotFoundError } from './index.js';
import type { Job, JobContext, WorkerJob } from './index.js';

class UsageError extends Error {}

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new UsageError(`${name} is not set`);
  return v;
}

function parseObject(text: string | undefined, what: string): Record<string, unknown> {
  if (text === undefined) throw new UsageError(`${what}: a JSON object argument is required`);
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${what}: not a JSON object`);
  return v as Record<string, unknown>;
}

function jobJson(job: Job | null): string {
  if (job === null) return 'null';
  return JSON.stringify({
    id: job.id,
    state: job.state,
    attempt: job.attempt,
    progress: job.progress ?? null,
    result: job.result ?? null,
    error: job.error ?? null,
  });
}

async function queue(): Promise<Queue> {
  const group = process.env['JOBQUEUE_GROUP'];
  return Queue.fromUrl(env('REDIS_URL'), env('JOBQUEUE_STREAM'), group ? { group } : {});
}

function logEvent(event: 'start' | 'end', job: WorkerJob): void {
  const path = process.env['CONFORMANCE_LOG'];
  if (!path) return;
  appendFileSync(path, JSON.stringify({ event, id: job.id, attempt: job.attempt, lang: 'typescript' }) + '\n');
}

/** The handler the harness drives through each job's payload. */
async function act(job: WorkerJob, ctx: JobContext): Promise<unknown> {
  const p = (job.payload ?? {}) as Record<string, unknown>;
  const message = String(p['error'] ?? 'failed');
  switch (p['action']) {
    case 'succeed':
      return p['result'];
    case 'fail':
      throw new Error(message);
    case 'fail_permanent':
      throw new PermanentFailure(message);
    case 'fail_until':
      if (job.attempt < Number(p['attempt'])) throw new Error(message);
      return p['result'];
    case 'progress':
      for (const step of (p['steps'] as unknown[] | undefined) ?? []) await ctx.progress(step);
      return p['result'];
    case 'sleep':
      await sleep(Number(p['ms'] ?? 0));
      return p['result'];
    case 'wait_cancel':
      if (!ctx.signal.aborted) {
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      }
      return { cancelled: true };
    default:
      throw new PermanentFailure(`unknown action ${JSON.stringify(p['action'])}`);
  }
}

async function work(options: Record<string, unknown>): Promise<void> {
  const worker = await Worker.fromEnv({
    concurrency: Number(options['concurrency'] ?? 1),
    handler: async (job, ctx) => {
      logEvent('start', job);
      try {
        return await act(job, ctx);
      } finally {
        logEvent('end', job);
      }
    },
  });
  await worker.run();
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'enqueue': {
      const o = parseObject(args[0], 'enqueue');
      const q = await queue();
      try {
        const id = await q.enqueue(o['payload'], {
          ...(o['delay_ms'] == null ? {} : { delay: Number(o['delay_ms']) }),
          ...(o['at_ms'] == null ? {} : { at: Number(o['at_ms']) }),
          ...(o['idempotency_key'] == null ? {} : { idempotencyKey: String(o['idempotency_key']) }),
        });
        console.log(JSON.stringify({ id }));
      } finally {
        await q.close();
      }
      return 0;
    }
    case 'get':
    case 'wait':
    case 'cancel': {
      const id = args[0];
      if (!id) throw new UsageError(`${command}: a job id is required`);
      const q = await queue();
      try {
        if (command === 'get') {
          console.log(jobJson(await q.getJob(id)));
        } else if (command === 'cancel') {
          console.log(JSON.stringify({ outcome: await q.cancel(id) }));
        } else {
          const timeout = Number(args[1]);
          if (!(timeout >= 0)) throw new UsageError('wait: <timeout_ms> must be a number ≥ 0');
          try {
            console.log(jobJson(await q.wait(id, { timeout })));
          } catch (e) {
            if (e instanceof WaitTimeoutError) return 3;
            if (e instanceof JobNotFoundError) {
              console.log('null');
              return 0;
            }
            throw e;
          }
        }
      } finally {
        await q.close();
      }
      return 0;
    }
    case 'work':
      await work(args[0] === undefined ? {} : parseObject(args[0], 'work'));
      return 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command ?? '')}: enqueue, get, wait, cancel or work`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`conformance-adapter: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
