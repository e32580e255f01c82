/** Producing and following jobs: enqueue, read, wait for, cancel. */

import { type Conn, type ErrorSink, type TlsOptions, checkLibrary, connect, libraryAware, parseRedisUrl } from './connection.js';
import { ConfigError, JobNotFoundError, WaitTimeoutError } from './errors.js';
import { type CancelOutcome, type Job, isFinal, jobFromFields } from './job.js';
import { QueueKeys } from './keys.js';
import { readManifest } from './manifest.js';
import { uuidv7 } from './uuid.js';

/** Options of `Queue.fromUrl`. */
export interface QueueOptions {
  /** The consumer group whose deliveries derive the state of plain-XACK workers (default `workers`). */
  group?: string;
  /** Called with connection errors; reconnecting is automatic. Default: ignored. */
  onError?: ErrorSink;
  /** How long the first connection may take, in ms (default 10 s); then a `ConnectError`. */
  connectTimeout?: number;
  /** TLS settings for a `rediss://` URL, e.g. `{ ca }` for a private CA. */
  tls?: TlsOptions;
}

/** Options of `Queue.fromManifest`. */
export interface ManifestOptions extends QueueOptions {
  /** The Redis URL; default the manifest's `spec.redis.url`, then `REDIS_URL`. */
  url?: string;
  /** Which JobQueue of a file holding several. */
  name?: string;
}

/** Options of `enqueue`. Give at most one of `delay` and `at`. */
export interface EnqueueOptions {
  /** Run no earlier than this many milliseconds from now (measured on the Redis clock). */
  delay?: number;
  /** Run no earlier than this time (a Date or unix milliseconds). */
  at?: Date | number;
  /** A second enqueue with the same key (while it is remembered) adds nothing and returns the first job's id. */
  idempotencyKey?: string;
  /** How long the key is remembered, in ms (default 24 h). */
  idempotencyTtl?: number;
}

/** Options of `wait`. */
export interface WaitOptions {
  /** Give up after this many milliseconds with a `WaitTimeoutError` (default: wait as long as it takes). */
  timeout?: number;
}

/** Longest single block on the events stream: bounds how late a derived ending is seen. */
const BLOCK_SLICE_MS = 2000;

/** One queue on one Redis: its stream, group and connection. */
export class Queue {
  readonly keys: QueueKeys;
  #idle: Conn[] = [];
  #blocking = new Set<Conn>();
  #closed = false;

  private constructor(
    private readonly conn: Conn,
    readonly stream: string,
    readonly group: string,
  ) {
    this.keys = new QueueKeys(stream);
  }

  /**
   * Connects to the queue whose stream key is `stream` at `url` (`redis://`, `rediss://`,
   * `redis+cluster://host:port,...`). Refuses a Redis without the `jobqueue` library.
   */
  static async fromUrl(url: string, stream: string, options: QueueOptions = {}): Promise<Queue> {
    const keys = new QueueKeys(stream);
    const group = options.group ?? 'workers';
    if (group === '') throw new ConfigError('group: must not be empty');
    const conn = await connect(parseRedisUrl(url), options.onError ?? (() => {}), options.connectTimeout, options.tls);
    try {
      await checkLibrary(conn, keys.stream);
    } catch (e) {
      conn.destroy();
      throw e;
    }
    return new Queue(conn, stream, group);
  }

  /** Connects to the queue a JobQueue manifest (YAML) declares: its stream and group. */
  static async fromManifest(path: string, options: ManifestOptions = {}): Promise<Queue> {
    const m = await readManifest(path, options.name);
    const url = options.url ?? m.redisUrl ?? process.env['REDIS_URL'];
    if (url === undefined || url === '') {
      throw new ConfigError(`${path}: no Redis URL: pass the url option, set spec.redis.url, or set REDIS_URL`);
    }
    return Queue.fromUrl(url, m.stream, {
      group: options.group ?? m.group,
      ...optional('onError', options.onError),
      ...optional('connectTimeout', options.connectTimeout),
      ...optional('tls', options.tls),
    });
  }

  /**
   * Adds a job whose payload is `payload` (any JSON-serialisable value) and returns its id (a
   * UUID v7), or with an idempotency key already used, the earlier job's id.
   */
  async enqueue(payload: unknown, options: EnqueueOptions = {}): Promise<string> {
    const json = JSON.stringify(payload);
    if (json === undefined) throw new ConfigError('payload: must be JSON-serialisable (got undefined)');
    const due = dueArg(options);
    const key = options.idempotencyKey ?? '';
    let ttl = '';
    if (options.idempotencyTtl !== undefined) {
      if (!Number.isInteger(options.idempotencyTtl) || options.idempotencyTtl < 1) {
        throw new ConfigError(`idempotencyTtl: must be a whole number of ms ≥ 1; got ${options.idempotencyTtl}`);
      }
      ttl = String(options.idempotencyTtl);
    }
    const reply = (await this.#fcall('jobqueue_enqueue', false, 2, undefined, [
      uuidv7(),
      json,
      due,
      key,
      ttl,
    ])) as unknown[];
    return String(reply[0]);
  }

  /** The job's record, or null when there is none (unknown id, expired, or tracking off). */
  async getJob(id: string): Promise<Job | null> {
    const reply = await this.#fcall('jobqueue_get', true, 3, id, [id, this.group]);
    if (!Array.isArray(reply)) return null;
    return jobFromFields(id, reply);
  }

  /**
   * Waits until the job is succeeded, dead or cancelled and returns it. Blocks on the queue's
   * events stream (on a connection of its own) rather than polling. Throws `WaitTimeoutError`
   * after `timeout` ms, `JobNotFoundError` when the job has no record.
   */
  async wait(id: string, options: WaitOptions = {}): Promise<Job> {
    const timeout = options.timeout;
    if (timeout !== undefined && !(timeout >= 0)) throw new ConfigError(`timeout: must be ≥ 0 ms; got ${timeout}`);
    const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
    const events = this.keys.events;
    // The stream's end, noted before the record is read: no change can fall between the two.
    const last = (await this.conn.call(events, true, ['XREVRANGE', events, '+', '-', 'COUNT', '1'])) as unknown[][];
    let after = last.length > 0 ? String(last[0]?.[0]) : '0-0';
    const reader = await this.#takeBlocking();
    try {
      let reread = true;
      let job: Job | null = null;
      for (;;) {
        if (reread) {
          job = await this.getJob(id);
          if (job === null) throw new JobNotFoundError(id);
          if (isFinal(job.state)) return job;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new WaitTimeoutError(id, timeout ?? 0, job);
        const block = Math.max(1, Math.min(left, BLOCK_SLICE_MS));
        const reply = (await reader.call(events, true, [
          'XREAD', 'COUNT', '1000', 'BLOCK', String(Math.ceil(block)), 'STREAMS', events, after,
        ])) as [string, [string, string[]][]][] | null;
        const entries = reply?.[0]?.[1] ?? [];
        // A timed-out block re-reads too: a plain-XACK worker's success adds no event.
        reread = entries.length === 0;
        for (const [entryId, fields] of entries) {
          after = entryId;
          if (fieldOf(fields, 'job') === id) reread = true;
        }
      }
    } finally {
      this.#giveBlocking(reader);
    }
  }

  /** Cancels the job: a waiting one never runs, a running one is asked to stop. */
  async cancel(id: string): Promise<CancelOutcome> {
    const reply = (await this.#fcall('jobqueue_cancel', false, 3, id, [id, this.group])) as unknown[];
    return String(reply[0]) as CancelOutcome;
  }

  /** Closes the connections (waits in progress are abandoned). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#blocking) c.destroy();
    for (const c of this.#idle) c.destroy();
    this.#idle = [];
    await this.conn.close();
  }

  async #takeBlocking(): Promise<Conn> {
    const c = this.#idle.pop() ?? (await this.conn.duplicate());
    this.#blocking.add(c);
    return c;
  }

  #giveBlocking(c: Conn): void {
    this.#blocking.delete(c);
    if (this.#closed) c.destroy();
    else this.#idle.push(c);
  }

  async #fcall(name: string, readonly: boolean, nkeys: 2 | 3, id: string | undefined, args: string[]): Promise<unknown> {
    const keys = [this.keys.stream, this.keys.settings];
    if (nkeys === 3) keys.push(this.keys.job(id ?? ''));
    try {
      return await this.conn.call(this.keys.stream, readonly, [
        readonly ? 'FCALL_RO' : 'FCALL', name, String(nkeys), ...keys, ...args,
      ]);
    } catch (e) {
      return libraryAware(e);
    }
  }
}

function fieldOf(flat: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
  return undefined;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** The `<due>` argument of jobqueue_enqueue: `0`, `+<ms>` or unix ms. */
function dueArg(options: EnqueueOptions): string {
  if (options.delay !== undefined && options.at !== undefined) {
    throw new ConfigError('delay and at: give at most one of them');
  }
  if (options.delay !== undefined) {
    const d = options.delay;
    if (!Number.isFinite(d) || d < 0) throw new ConfigError(`delay: must be a number of ms ≥ 0; got ${d}`);
    return d === 0 ? '0' : `+${Math.round(d)}`;
  }
  if (options.at !== undefined) {
    const at = options.at instanceof Date ? options.at.getTime() : options.at;
    if (!Number.isFinite(at) || at < 0) throw new ConfigError(`at: must be a valid time; got ${String(options.at)}`);
    return String(Math.round(at));
  }
  return '0';
}
