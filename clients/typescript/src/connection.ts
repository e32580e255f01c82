/**
 * Connections to a queue's Redis: one standalone server (`redis://`, `rediss://`) or a Redis
 * Cluster (`redis+cluster://` / `rediss+cluster://` with seed nodes). The scheme says which;
 * nothing is auto-detected. Every command names the key it routes by, so the same call works
 * on both.
 */

import type { ConnectionOptions } from 'node:tls';

import { createClient, createCluster } from '@redis/client';

import { ConfigError, ConnectError, LibraryError } from './errors.js';

/** The library revision this client needs (`FCALL_RO jobqueue_version 0`). */
export const LIBRARY_REVISION = 4;

/** Where a queue lives, parsed from its URL. */
export type Endpoint =
  | { kind: 'standalone'; url: string }
  | {
      kind: 'cluster';
      nodes: { host: string; port: number }[];
      tls: boolean;
      username?: string;
      password?: string;
    };

/** Parses a Redis URL; throws `ConfigError` naming what is allowed. */
export function parseRedisUrl(url: string): Endpoint {
  const scheme = /^([a-z+]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'redis' || scheme === 'rediss') {
    try {
      new URL(url);
    } catch {
      throw new ConfigError(`Redis URL is not a valid URL: ${redact(url)}`);
    }
    return { kind: 'standalone', url };
  }
  if (scheme === 'redis+cluster' || scheme === 'rediss+cluster') {
    return parseClusterUrl(url, scheme === 'rediss+cluster');
  }
  throw new ConfigError(
    `Redis URL ${redact(url)}: the scheme must be redis://, rediss://, redis+cluster:// or rediss+cluster://`,
  );
}

function parseClusterUrl(url: string, tls: boolean): Endpoint {
  let rest = url.slice(url.indexOf('://') + 3);
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const path = rest.slice(slash);
    if (path !== '/' && path !== '/0') {
      throw new ConfigError(`Redis URL ${redact(url)}: a Redis Cluster has only database 0`);
    }
    rest = rest.slice(0, slash);
  }
  const at = rest.lastIndexOf('@');
  let username: string | undefined;
  let password: string | undefined;
  if (at >= 0) {
    const auth = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = auth.indexOf(':');
    const user = decodeURIComponent(colon >= 0 ? auth.slice(0, colon) : auth);
    if (user !== '') username = user;
    if (colon >= 0) password = decodeURIComponent(auth.slice(colon + 1));
  }
  const nodes = rest.split(',').map((hostPort) => {
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort.trim());
    if (!m || m[1] === undefined) {
      throw new ConfigError(`Redis URL ${redact(url)}: seed node ${JSON.stringify(hostPort)} is not host:port`);
    }
    const port = m[2] === undefined ? 6379 : Number(m[2]);
    if (!(port > 0 && port < 65536)) {
      throw new ConfigError(`Redis URL ${redact(url)}: port ${m[2]} is out of range`);
    }
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
  return {
    kind: 'cluster',
    nodes,
    tls,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
}

/** `url` with any password replaced, for messages. */
export function redact(url: string): string {
  return url.replace(/(:\/\/[^/@]*:)[^@/]*@/, '$1***@').replace(/(:\/\/)([^:@/]+)@/, '$1***@');
}

/** A connection (or, on a Cluster, one connection per node) that routes each command by its key. */
export interface Conn {
  /** Sends `args`; `key` picks the Cluster node (ignored on a standalone server). */
  call(key: string, readonly: boolean, args: string[]): Promise<unknown>;
  /** A new connection to the same endpoint (for blocking reads). */
  duplicate(): Promise<Conn>;
  /** Closes after the replies in flight. */
  close(): Promise<void>;
  /** Closes at once (a blocked read is abandoned). */
  destroy(): void;
}

/** Called with connection errors (reconnects happen by themselves). */
export type ErrorSink = (e: Error) => void;

/**
 * TLS settings for `rediss://` and `rediss+cluster://` (Node's `tls.connect` options), e.g.
 * `{ ca: readFileSync('ca.pem') }` for a private CA. Default: the system's root certificates.
 */
export type TlsOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;

/** How long the first connection may take (reconnects after that are retried without end). */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Opens a connection to `endpoint`. The first connection is retried for `timeoutMs`, then
 * refused with a `ConnectError`; once connected, a lost
 * connection is re-established in the background (commands wait for it).
 */
export async function connect(
  endpoint: Endpoint,
  onError: ErrorSink,
  timeoutMs: number = CONNECT_TIMEOUT_MS,
  tls?: TlsOptions,
): Promise<Conn> {
  const secure = endpoint.kind === 'cluster' ? endpoint.tls : /^rediss:/i.test(endpoint.url);
  if (tls !== undefined && !secure) {
    throw new ConfigError('tls: TLS settings need a rediss:// or rediss+cluster:// URL');
  }
  const tlsSocket = secure ? { tls: true as const, ...tls } : {};
  let connected = false;
  const deadline = Date.now() + timeoutMs;
  const reconnectStrategy = (retries: number, cause: Error): number | Error =>
    !connected && Date.now() >= deadline ? cause : Math.min(50 * 2 ** retries, 2000);
  const where =
    endpoint.kind === 'standalone'
      ? redact(endpoint.url)
      : endpoint.nodes.map((n) => `${n.host}:${n.port}`).join(',');
  try {
    if (endpoint.kind === 'standalone') {
      const client = createClient({ url: endpoint.url, RESP: 2, socket: { reconnectStrategy, ...tlsSocket } });
      client.on('error', onError);
      await client.connect();
      connected = true;
      return standaloneConn(client, onError);
    }
    // Discovery gives up at once when no seed answers: try again until the deadline.
    for (;;) {
      const cluster = createCluster({
        RESP: 2,
        rootNodes: endpoint.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
        defaults: {
          ...(endpoint.username === undefined ? {} : { username: endpoint.username }),
          ...(endpoint.password === undefined ? {} : { password: endpoint.password }),
          socket: { reconnectStrategy, ...tlsSocket },
        },
      });
      cluster.on('error', onError);
      try {
        await cluster.connect();
      } catch (e) {
        cluster.destroy();
        if (Date.now() >= deadline) throw e;
        onError(e instanceof Error ? e : new Error(String(e)));
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      connected = true;
      return clusterConn(cluster, onError);
    }
  } catch (e) {
    throw new ConnectError(`cannot connect to Redis at ${where}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The part of a node-redis client (or cluster) used here, RESP2 replies. */
interface RawClient {
  on(event: 'error', listener: (e: Error) => void): unknown;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
}

interface RawStandalone extends RawClient {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(): RawStandalone;
}

interface RawCluster extends RawClient {
  sendCommand(key: string, readonly: boolean, args: string[]): Promise<unknown>;
  duplicate(): RawCluster;
}

function standaloneConn(client: RawStandalone, onError: ErrorSink): Conn {
  return {
    call: (_key, _readonly, args) => client.sendCommand(args),
    duplicate: async () => {
      const dup = client.duplicate();
      dup.on('error', onError);
      await dup.connect();
      return standaloneConn(dup, onError);
    },
    close: () => client.close(),
    destroy: () => client.destroy(),
  };
}

function clusterConn(cluster: RawCluster, onError: ErrorSink): Conn {
  return {
    call: (key, readonly, args) => cluster.sendCommand(key, readonly, args),
    duplicate: async () => {
      const dup = cluster.duplicate();
      dup.on('error', onError);
      await dup.connect();
      return clusterConn(dup, onError);
    },
    close: () => cluster.close(),
    destroy: () => cluster.destroy(),
  };
}

/** Whether a reply error means the library (or FCALL itself) is missing. */
function isMissingFunction(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /function not found|unknown command/i.test(msg);
}

/**
 * Refuses a Redis without the `jobqueue` library or with a revision older than
 * {@link LIBRARY_REVISION}. Asked on the node that owns `stream`'s slot.
 */
export async function checkLibrary(conn: Conn, stream: string): Promise<number> {
  let revision: unknown;
  try {
    revision = await conn.call(stream, true, ['FCALL_RO', 'jobqueue_version', '0']);
  } catch (e) {
    if (isMissingFunction(e)) {
      throw new LibraryError(
        'the jobqueue function library is not loaded: is the queue provisioned by jobqueue-operator?',
      );
    }
    throw e;
  }
  const n = Number(revision);
  if (!Number.isInteger(n) || n < LIBRARY_REVISION) {
    throw new LibraryError(
      `the jobqueue function library is revision ${String(revision)}, this client needs ${LIBRARY_REVISION} or newer: upgrade jobqueue-operator`,
    );
  }
  return n;
}

/** Throws a `LibraryError` for a missing-function reply, else `e` itself. */
export function libraryAware(e: unknown): never {
  if (isMissingFunction(e)) {
    throw new LibraryError(
      'the jobqueue function library is not loaded: is the queue provisioned by jobqueue-operator?',
    );
  }
  throw e;
}
