/** Base class of every error this client raises about a queue or its Redis. */
export class JobQueueError extends Error {
  override name = 'JobQueueError';
}

/** Bad input: a URL, a manifest, an option or an environment variable. */
export class ConfigError extends JobQueueError {
  override name = 'ConfigError';
}

/** The Redis could not be reached (the first connection; later ones are retried without end). */
export class ConnectError extends JobQueueError {
  override name = 'ConnectError';
}

/** The Redis has no `jobqueue` function library, or one older than this client needs. */
export class LibraryError extends JobQueueError {
  override name = 'LibraryError';
}

/** `Queue.wait` gave up before the job reached a final state; `job` is the last record read. */
export class WaitTimeoutError extends JobQueueError {
  override name = 'WaitTimeoutError';
  constructor(
    readonly jobId: string,
    readonly timeoutMs: number,
    readonly job: unknown,
  ) {
    super(`job ${jobId} did not finish within ${timeoutMs} ms`);
  }
}

/** `Queue.wait` found no record of the job (unknown id, expired, or a queue without tracking). */
export class JobNotFoundError extends JobQueueError {
  override name = 'JobNotFoundError';
  constructor(readonly jobId: string) {
    super(`no record of job ${jobId}`);
  }
}

/**
 * Thrown by a handler when retrying cannot help: the job goes to the dead-letter stream at once
 * instead of being retried.
 */
export class PermanentFailure extends Error {
  override name = 'PermanentFailure';
}

/** Whether `e` asks for a permanent failure (also across two copies of this package). */
export function isPermanentFailure(e: unknown): boolean {
  return e instanceof PermanentFailure || (e instanceof Error && e.name === 'PermanentFailure');
}

/** The text stored as a failed job's error. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
