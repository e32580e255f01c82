/** A job's record as `jobqueue_get` answers it. */

/** Where a job is in its life; the last three are final. */
export type JobState = 'queued' | 'delayed' | 'active' | 'retrying' | 'succeeded' | 'dead' | 'cancelled';

const FINAL: ReadonlySet<string> = new Set(['succeeded', 'dead', 'cancelled']);

/** Whether a job in `state` will not change any more. */
export function isFinal(state: string): boolean {
  return FINAL.has(state);
}

/** What `cancel` did. */
export type CancelOutcome =
  /** The job was waiting and will never run. */
  | 'cancelled'
  /** The job is running: its worker is asked to stop (it sees the request on its next heartbeat or progress report). */
  | 'requested'
  /** The job had already ended. */
  | 'final'
  /** There is no record of the job. */
  | 'missing';

/** One job's record. Times are the Redis server's clock. */
export interface Job {
  id: string;
  state: JobState;
  /** 1 on the first delivery, +1 on each retry. */
  attempt: number;
  /** The last progress value reported (parsed JSON), if any. */
  progress?: unknown;
  /** What the handler returned (parsed JSON), once it succeeded. */
  result?: unknown;
  /** Why a result was not stored (larger than the queue's maxResultSize). */
  resultDropped?: string;
  /** The last failure's error text. */
  error?: string;
  /** A cancel was requested while the job ran. */
  cancelRequested: boolean;
  /** The state was derived from the consumer group (a worker that only acknowledges). */
  derived: boolean;
  enqueuedAt?: Date;
  startedAt?: Date;
  finishedAt?: Date;
  updatedAt?: Date;
  /** When a delayed or retrying job becomes due. */
  due?: Date;
  /** The stream entry of the current (or last) delivery. */
  entry?: string;
  /** The consumer running it. */
  consumer?: string;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function time(text: string | undefined): Date | undefined {
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? new Date(n) : undefined;
}

/** A job from `jobqueue_get`'s flat field list. */
export function jobFromFields(id: string, flat: unknown[]): Job {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), String(flat[i + 1]));
  const job: Job = {
    id,
    state: (f.get('state') ?? 'queued') as JobState,
    attempt: Number(f.get('attempt') ?? '1') || 1,
    cancelRequested: f.get('cancel_requested') === '1',
    derived: f.get('derived') === '1',
  };
  const text = (name: string): string | undefined => {
    const v = f.get(name);
    return v === undefined || v === '' ? undefined : v;
  };
  const progress = text('progress');
  if (progress !== undefined) job.progress = parseJson(progress);
  const result = text('result');
  if (result !== undefined) job.result = parseJson(result);
  const dropped = text('result_dropped');
  if (dropped !== undefined) job.resultDropped = dropped;
  const error = text('error');
  if (error !== undefined) job.error = error;
  const entry = text('entry');
  if (entry !== undefined) job.entry = entry;
  const consumer = text('consumer');
  if (consumer !== undefined) job.consumer = consumer;
  const times: [keyof Job, string][] = [
    ['enqueuedAt', 'enqueued_at'],
    ['startedAt', 'started_at'],
    ['finishedAt', 'finished_at'],
    ['updatedAt', 'updated_at'],
    ['due', 'due'],
  ];
  for (const [key, field] of times) {
    const t = time(f.get(field));
    if (t !== undefined) (job as unknown as Record<string, unknown>)[key] = t;
  }
  return job;
}
