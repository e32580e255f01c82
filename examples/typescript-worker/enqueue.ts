// Enqueues one email from the command line and waits for its outcome:
//   node dist/enqueue.js '{"to":"a@example.com","subject":"hi"}' [--delay-ms N]
import { fileURLToPath } from 'node:url';

import { Queue, WaitTimeoutError } from '@jobqueue/client';

const [payload = '{"to":"a@example.com","subject":"hello"}', flag, value] = process.argv.slice(2);
// The manifest beside this file's source (it runs from dist/); the Redis URL from REDIS_URL.
const queue = await Queue.fromManifest(fileURLToPath(new URL('../jobqueue.yaml', import.meta.url)));
try {
  const delay = flag === '--delay-ms' ? Number(value) : undefined;
  const id = await queue.enqueue(JSON.parse(payload), delay === undefined ? {} : { delay });
  console.log(`enqueued ${id}`);
  const job = await queue.wait(id, { timeout: 60_000 });
  console.log(`${job.state} after ${job.attempt} attempt(s):`, job.result ?? job.error ?? '');
  process.exitCode = job.state === 'succeeded' ? 0 : 1;
} catch (e) {
  if (!(e instanceof WaitTimeoutError)) throw e;
  console.log(`still ${JSON.stringify((e.job as { state?: string } | null)?.state)} after 60 s`);
  process.exitCode = 2;
} finally {
  await queue.close();
}
