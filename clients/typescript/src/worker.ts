/** Running jobs: take, start, heartbeat, complete or fail, through the `jobqueue` library. */

import { hostname } from 'node:os';

import { type Conn, type ErrorSink, type TlsOptions, checkLibrary, connect, libraryAware, parseRedisUrl } from './connection.js';
import { ConfigError, errorText, isPermanentFailure } from './errors.js';
import { QueueKeys } from './keys.js';

/** A job handed to a handler; `P` is the payload's type as the handler expects it (not checked). */
export interface WorkerJob<P = unknown> {
  /** The job id, stable across retries. */
  readonly id: string;
  /** The payload, parsed from JSON. */
  readonly payload: P;
  /** 1 on the first delivery, +1 on each retry. */
  readonly attempt: number;
  /** The stream entry of this delivery. */
  readonly entryId: string;
  readonly enqueuedAt?: Date;
  /** For a job fired by a Schedule: the schedule's name. */
  readonly schedule?: string;
  /** For a job fired by a Schedule: the run's time. */
  readonly scheduledAt?: Date;
  /** Every field of the stream entry, as stored. */
  readonly fields: Readonly<Record<string, string>>;
}

/** What a handler gets besides the job. */
export interface JobContext {
  /** Aborted when a cancel of this job is requested (seen on a heartbeat or progress report). */
  readonly signal: AbortSignal;
  /** Reports progress (any JSON-serialisable value); also keeps the job from being reclaimed. */
  progress(value: unknown): Promise<void>;
}

/**
 * Runs one job and returns its result (JSON-serialisable; `undefined` stores none). Throwing
 * fails the attempt (retried with the queue's backoff); throwing `PermanentFailure` sends the
 * job to the dead-letter stream at once.
 */
export type Handler<P = unknown> = (job: WorkerJob<P>, ctx: JobContext) => unknown;

/** Where a worker logs; default: warnings and errors to stderr. */
export type Logger = (level: 'info' | 'warn' | 'error', message: string) => void;

/** Options of `Worker.fromEnv` / `Worker.connect`. */
export interface WorkerOptions<P = unknown> {
  handler: Handler<P>;
  /** Jobs run at the same time (default 1). */
  concurrency?: number;
  /** How long one blocking read waits, in ms (default 1000): bounds how late a stop is noticed. */
  blockMs?: number;
  /** Drain on SIGTERM and SIGINT while `run()` runs (default true). */
  handleSignals?: boolean;
  logger?: Logger;
  /** Called with connection errors; reconnecting is automatic. Default: logged as warnings. */
  onError?: ErrorSink;
  /** How long the first connection may take, in ms (default 10 s); then a `ConnectError`. */
  connectTimeout?: number;
  /** TLS settings for a `rediss://` URL, e.g. `{ ca }` for a private CA. */
  tls?: TlsOptions;
}

/** Where a worker connects, besides `WorkerOptions`. */
export interface WorkerTarget {
  url: string;
  stream: string;
  group?: string;
  consumer?: string;
}

/** Half the visibility timeout (a job is heartbeated before it could be reclaimed), at most 5 s, at least 100 ms. */
export function heartbeatPeriod(visibilityTimeoutMs: number): number {
  return Math.min(5000, Math.max(100, Math.floor(visibilityTimeoutMs / 2)));
}

const READ_RETRY_MS = 1000;

const defaultLogger: Logger = (level, message) => {
  if (level !== 'info') console.error(`jobqueue worker ${level}: ${message}`);
};

interface Delivery {
  entryId: string;
  fields: Record<string, string>;
}

/** A worker: takes jobs of one queue as one consumer and runs them with a handler. */
export class Worker {
  readonly keys: QueueKeys;
  readonly concurrency: number;
  readonly heartbeatMs: number;
  #running = new Set<Promise<void>>();
  #stopping = false;
  #wake: (() => void) | undefined;
  #run: Promise<void> | undefined;
  #closed = false;
  readonly #log: Logger;

  private constructor(
    private readonly conn: Conn,
    private readonly reader: Conn,
    readonly stream: string,
    readonly group: string,
    readonly consumer: string,
    visibilityTimeoutMs: number,
    private readonly options: WorkerOptions,
  ) {
    this.keys = new QueueKeys(stream);
    this.concurrency = options.concurrency ?? 1;
    this.heartbeatMs = heartbeatPeriod(visibilityTimeoutMs);
    this.#log = options.logger ?? defaultLogger;
  }

  /**
   * A worker configured the way the operator configures worker containers: `REDIS_URL`,
   * `JOBQUEUE_STREAM`, `JOBQUEUE_GROUP` (default `workers`), `JOBQUEUE_CONSUMER` (default
   * `<hostname>-<pid>`).
   */
  static async fromEnv<P = unknown>(options: WorkerOptions<P>): Promise<Worker> {
    const env = process.env;
    const need = (name: string): string => {
      const v = env[name];
      if (v === undefined || v === '') throw new ConfigError(`${name} is not set`);
      return v;
    };
    const target: WorkerTarget = { url: need('REDIS_URL'), stream: need('JOBQUEUE_STREAM') };
    if (env['JOBQUEUE_GROUP']) target.group = env['JOBQUEUE_GROUP'];
    if (env['JOBQUEUE_CONSUMER']) target.consumer = env['JOBQUEUE_CONSUMER'];
    return Worker.connect(target, options);
  }

  /** A worker on an explicit queue. Refuses a Redis without the `jobqueue` library. */
  static async connect<P = unknown>(target: WorkerTarget, options: WorkerOptions<P>): Promise<Worker> {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ConfigError(`concurrency: must be a whole number ≥ 1; got ${concurrency}`);
    }
    if (typeof options.handler !== 'function') throw new ConfigError('handler: must be a function');
    const keys = new QueueKeys(target.stream);
    const group = target.group ?? 'workers';
    const consumer = target.consumer ?? `${hostname()}-${process.pid}`;
    const log = options.logger ?? defaultLogger;
    const onError = options.onError ?? ((e: Error) => log('warn', `Redis connection: ${e.message}`));
    const conn = await connect(parseRedisUrl(target.url), onError, options.connectTimeout, options.tls);
    let reader: Conn | undefined;
    try {
      await checkLibrary(conn, keys.stream);
      const vt = await conn.call(keys.stream, true, ['HGET', keys.settings, 'visibility_timeout_ms']);
      reader = await conn.duplicate();
      const visibility = Number(vt ?? '') > 0 ? Number(vt) : 300000;
      return new Worker(conn, reader, target.stream, group, consumer, visibility, options as unknown as WorkerOptions);
    } catch (e) {
      reader?.destroy();
      conn.destroy();
      throw e;
    }
  }

  /**
   * Takes and runs jobs until `close()` (or SIGTERM/SIGINT), then waits for the jobs in hand
   * and closes the connections. A queue that cannot be read at all at start is an error
   * (thrown); later read errors are logged and retried.
   */
  run(): Promise<void> {
    this.#run ??= this.#loop();
    return this.#run;
  }

  /** Stops taking jobs, waits for the running ones, closes the connections. */
  async close(): Promise<void> {
    this.#stop();
    if (this.#run !== undefined) {
      await this.#run.catch(() => {});
    } else {
      await this.#shutdown();
    }
  }

  /** Jobs running now. */
  get active(): number {
    return this.#running.size;
  }

  #stop(): void {
    this.#stopping = true;
    this.#wake?.();
  }

  async #loop(): Promise<void> {
    const signals = this.options.handleSignals ?? true;
    let signalled = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signalled++;
      if (signalled > 1) {
        this.#log('warn', `${sig} again: exiting without waiting for ${this.#running.size} job(s)`);
        process.exit(1);
      }
      this.#log('info', `${sig}: finishing ${this.#running.size} job(s), taking no more`);
      this.#stop();
    };
    if (signals) {
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    }
    try {
      let started = false;
      while (!this.#stopping) {
        const free = this.concurrency - this.#running.size;
        if (free <= 0) {
          await this.#idle();
          continue;
        }
        let taken: { delivery: Delivery; started: boolean }[];
        try {
          taken = await this.#next(free);
        } catch (e) {
          if (!started) throw e;
          this.#log('warn', `reading jobs failed, retrying: ${errorText(e)}`);
          await this.#idle(READ_RETRY_MS);
          continue;
        }
        started = true;
        for (const t of taken) {
          const p: Promise<void> = this.#runOne(t.delivery, t.started)
            .catch((e: unknown) => this.#log('error', `job ${t.delivery.fields['id'] ?? t.delivery.entryId}: ${errorText(e)}`))
            .finally(() => {
              this.#running.delete(p);
              this.#wake?.();
            });
          this.#running.add(p);
        }
      }
      while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
    } finally {
      if (signals) {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
      await this.#shutdown();
    }
  }

  async #shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.reader.destroy();
    await this.conn.close();
  }

  /** Waits until a job ends, a stop, or `ms`. */
  #idle(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      const self = this;
      function done(): void {
        if (timer !== undefined) clearTimeout(timer);
        self.#wake = undefined;
        resolve();
      }
      this.#wake = done;
    });
  }

  /**
   * Up to `count` jobs: taken and started in one call when some wait, else the one a blocking
   * read hands over (not yet started). The read is not raced against a stop: a delivery the
   * server made must reach a handler.
   */
  async #next(count: number): Promise<{ delivery: Delivery; started: boolean }[]> {
    const { stream, settings } = this.keys;
    let reply: unknown;
    try {
      reply = await this.conn.call(stream, false, [
        'FCALL', 'jobqueue_take', '2', stream, settings, this.group, this.consumer, String(count),
      ]);
    } catch (e) {
      libraryAware(e);
    }
    const taken = entries(reply);
    if (taken.length > 0) return taken.map((delivery) => ({ delivery, started: true }));
    const read = (await this.reader.call(stream, false, [
      'XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', '1',
      'BLOCK', String(this.options.blockMs ?? 1000), 'STREAMS', stream, '>',
    ])) as [string, unknown][] | null;
    return entries(read?.[0]?.[1]).map((delivery) => ({ delivery, started: false }));
  }

  async #op(name: string, id: string, args: string[]): Promise<unknown[]> {
    const { stream, settings } = this.keys;
    try {
      return (await this.conn.call(stream, false, [
        'FCALL', name, '3', stream, settings, this.keys.job(id), ...args,
      ])) as unknown[];
    } catch (e) {
      return libraryAware(e);
    }
  }

  async #runOne(d: Delivery, started: boolean): Promise<void> {
    const id = d.fields['id'] ?? d.entryId;
    if (!started) {
      const [state] = await this.#op('jobqueue_start', id, [this.group, this.consumer, d.entryId, id]);
      if (state !== 'active') return;
    }
    const abort = new AbortController();
    let beating = true;
    const seen = (reply: unknown[]): void => {
      if (reply[0] === 'stale') {
        // Reclaimed meanwhile: heartbeats cannot keep it; its outcome will be refused as stale.
        if (beating) this.#log('warn', `job ${id} was handed to another worker`);
        beating = false;
      } else if (Number(reply[1]) === 1 && !abort.signal.aborted) {
        abort.abort(new Error(`cancel of job ${id} requested`));
      }
    };
    const ctx: JobContext = {
      signal: abort.signal,
      progress: async (value: unknown) => {
        const json = JSON.stringify(value) ?? 'null';
        seen(await this.#op('jobqueue_progress', id, [this.group, this.consumer, d.entryId, id, json]));
      },
    };
    let timer: NodeJS.Timeout | undefined;
    const beat = (): void => {
      timer = setTimeout(() => {
        this.#op('jobqueue_heartbeat', id, [this.group, this.consumer, d.entryId, id])
          .then(seen, (e: unknown) => this.#log('warn', `heartbeat of job ${id} failed: ${errorText(e)}`))
          .finally(() => {
            if (beating) beat();
          });
      }, this.heartbeatMs);
    };
    beat();
    let outcome: { result: string } | { error: string; permanent: boolean };
    try {
      const job = workerJob(d, id);
      const value = await this.options.handler(job, ctx);
      outcome = { result: value === undefined ? '' : resultJson(value) };
    } catch (e) {
      outcome = { error: errorText(e), permanent: isPermanentFailure(e) };
    } finally {
      beating = false;
      clearTimeout(timer);
    }
    await this.#settle(d, id, outcome);
  }

  /** Records the outcome; one retry covers a reconnect. */
  async #settle(d: Delivery, id: string, o: { result: string } | { error: string; permanent: boolean }): Promise<void> {
    const attempt = d.fields['attempt'] ?? '1';
    const call = (): Promise<unknown[]> =>
      'result' in o
        ? this.#op('jobqueue_complete', id, [this.group, d.entryId, id, o.result, attempt])
        : this.#op('jobqueue_fail', id, [this.group, d.entryId, id, o.error, o.permanent ? '1' : '0']);
    let reply: unknown[];
    try {
      reply = await call();
    } catch {
      reply = await call();
    }
    this.#log('info', `job ${id} attempt ${attempt}: ${String(reply[0])}`);
  }
}

/** A JSON text of a handler's result; a value JSON cannot represent fails the job. */
function resultJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new Error(`the handler's result cannot be stored as JSON (${typeof value})`);
  return json;
}

function entries(reply: unknown): Delivery[] {
  if (!Array.isArray(reply)) return [];
  return reply.map((e) => {
    const [entryId, flat] = e as [string, string[] | null];
    const fields: Record<string, string> = {};
    for (let i = 0; flat && i + 1 < flat.length; i += 2) fields[String(flat[i])] = String(flat[i + 1]);
    return { entryId: String(entryId), fields };
  });
}

function workerJob(d: Delivery, id: string): WorkerJob {
  const f = d.fields;
  let payload: unknown;
  try {
    payload = JSON.parse(f['payload'] ?? 'null');
  } catch {
    throw new PermanentPayloadError(`payload is not JSON: ${(f['payload'] ?? '').slice(0, 100)}`);
  }
  const ms = (v: string | undefined): Date | undefined =>
    v !== undefined && v !== '' && Number.isFinite(Number(v)) ? new Date(Number(v)) : undefined;
  const job: { -readonly [K in keyof WorkerJob]: WorkerJob[K] } = {
    id,
    payload,
    attempt: Number(f['attempt'] ?? '1') || 1,
    entryId: d.entryId,
    fields: f,
  };
  const enqueuedAt = ms(f['enqueued_at']);
  if (enqueuedAt) job.enqueuedAt = enqueuedAt;
  if (f['schedule']) job.schedule = f['schedule'];
  const scheduledAt = ms(f['scheduled_for'] ?? f['scheduled_at']);
  if (scheduledAt) job.scheduledAt = scheduledAt;
  return job;
}

/** A payload no retry can fix. */
class PermanentPayloadError extends Error {
  override name = 'PermanentFailure';
}
