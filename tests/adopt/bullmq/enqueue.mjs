// Enqueues N jobs of S seconds with BullMQ's own client (Queue.add); prints the job ids.
//   REDIS_URL=redis://127.0.0.1:PORT node enqueue.mjs --queue default --count 24 --seconds 1
// --delay MS delays them, --priority N prioritizes them, --fail adds jobs that throw
// (attempts 1), --pause pauses the queue afterwards.
import { Queue } from 'bullmq';
import IORedis from 'ioredis';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    queue: { type: 'string', default: 'default' },
    count: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '1' },
    delay: { type: 'string', default: '0' },
    priority: { type: 'string', default: '0' },
    fail: { type: 'boolean', default: false },
    pause: { type: 'boolean', default: false },
  },
});
const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
const queue = new Queue(values.queue, {
  connection,
  prefix: process.env.BULLMQ_PREFIX || 'bull',
});
const opts = {};
if (Number(values.delay) > 0) opts.delay = Number(values.delay);
if (Number(values.priority) > 0) opts.priority = Number(values.priority);
for (let i = 0; i < Number(values.count); i++) {
  const data = values.fail ? { fail: true } : { seconds: Number(values.seconds) };
  const job = await queue.add(values.fail ? 'fail' : 'sleep', data, opts);
  console.log(job.id);
}
if (values.pause) await queue.pause();
await queue.close();
await connection.quit();
