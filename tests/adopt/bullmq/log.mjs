// The event log every adopted-queue test worker writes: one JSON line per job start/end and
// a "term" line (job null) when the worker is asked to stop,
// appended to the file named by ADOPT_LOG with a single write (lines never interleave).
import { appendFileSync } from 'node:fs';

export function logEvent(event, job) {
  const path = process.env.ADOPT_LOG;
  if (!path) return;
  const line = JSON.stringify({
    event,
    job,
    worker: process.env.JOBQUEUE_CONSUMER ?? '',
    pid: process.pid,
    t: Date.now(),
  });
  appendFileSync(path, `${line}\n`);
}
