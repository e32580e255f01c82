// An email-sending worker: the operator starts it with REDIS_URL, JOBQUEUE_STREAM,
// JOBQUEUE_GROUP and JOBQUEUE_CONSUMER set (see jobqueue.yaml), and sends SIGTERM to scale in.
import { setTimeout as sleep } from 'node:timers/promises';

import { PermanentFailure, Worker } from '@jobqueue/client';

interface Email {
  to?: string;
  subject?: string;
  /** How long "sending" takes, to watch progress, cancel and SIGTERM at work. */
  ms?: number;
}

// The payload type is what this handler expects; it is not checked at run time.
const worker = await Worker.fromEnv<Email>({
  concurrency: Number(process.env['CONCURRENCY'] ?? 4),
  handler: async (job, ctx) => {
    const email = job.payload;
    if (!email.to?.includes('@')) {
      // Retrying cannot fix a missing address: straight to the dead-letter stream.
      throw new PermanentFailure(`no valid "to" address: ${JSON.stringify(email.to)}`);
    }
    await ctx.progress({ step: 'rendering' });
    // A cancel request aborts the signal: the sleep rejects and the job ends cancelled.
    await sleep(email.ms ?? 200, undefined, { signal: ctx.signal });
    await ctx.progress({ step: 'sending' });
    console.log(`sent "${email.subject ?? ''}" to ${email.to} (job ${job.id}, attempt ${job.attempt})`);
    return { to: email.to, sentAt: new Date().toISOString() };
  },
});
await worker.run(); // returns after SIGTERM once the jobs in hand are done
