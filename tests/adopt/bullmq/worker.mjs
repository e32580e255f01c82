// BullMQ worker: `node worker.mjs <queue>` (REDIS_URL; BULLMQ_PREFIX, default "bull";
// BULLMQ_CONCURRENCY, default 1). A job `{seconds}` sleeps that long; `{fail: true}` throws.
// On SIGTERM/SIGINT it calls worker.close(): no new job is taken, the running ones finish,
// then the process exits.
import { Worker } from 'bullmq';
import IORedis from 'ioredis';
import { logEvent } from './log.mjs';

const queue = process.argv[2] ?? 'default';
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const worker = new Worker(
  queue,
  async (job) => {
    if (job.data.fail) throw new Error('failing on purpose');
    logEvent('start', job.id);
    await sleep(Number(job.data.seconds ?? 1) * 1000);
    logEvent('end', job.id);
    return job.data.seconds;
  },
  {
    connection,
    prefix: process.env.BULLMQ_PREFIX || 'bull',
    concurrency: Number(process.env.BULLMQ_CONCURRENCY || 1),
    name: process.env.JOBQUEUE_CONSUMER,
  },
);
worker.on('error', (err) => console.error(`worker error: ${err.message}`));

let closing = false;
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    if (closing) return;
    closing = true;
    logEvent('term', null);
    console.log(`${signal}: closing after the running jobs`);
    await worker.close();
    await connection.quit();
    process.exit(0);
  });
}
console.log(`worker ${process.env.JOBQUEUE_CONSUMER ?? ''} on ${queue} (pid ${process.pid})`);
