/**
 * Test harness: real redis-server processes on free loopback ports (never 6379), a three-node
 * Redis Cluster, and the real `jobqueue-operator run --local` provisioning queues from a
 * manifest directory. Every wait polls with a deadline; nothing sleeps blindly.
 */

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { createClient, createCluster } from '@redis/client';

/** clients/typescript (this file runs from build/test/). */
export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const repoDir = resolve(packageDir, '../..');

/** Generous bound for anything that should take a second or two (2-core CI machines). */
export const DEADLINE_MS = 30_000;

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Starts a child that is killed when the test process exits. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/**
 * Why a test cannot run here (a tool is missing), or undefined. Under CI=true a missing tool
 * is an error, never a skip.
 */
export function missingTools(needOperator = true): string | undefined {
  const missing: string[] = [];
  for (const tool of ['redis-server', 'redis-cli']) {
    if (spawnSync(tool, ['--version']).error) missing.push(`${tool} (apt-get install redis-server)`);
  }
  if (needOperator && !existsSync(operatorBin())) {
    missing.push(`${operatorBin()} (cargo build, or set JOBQUEUE_OPERATOR_BIN)`);
  }
  if (missing.length === 0) return undefined;
  const why = `missing: ${missing.join(', ')}`;
  if (process.env['CI'] === 'true') throw new Error(why);
  return why;
}

/** The operator binary: JOBQUEUE_OPERATOR_BIN, else the workspace's debug build. */
export function operatorBin(): string {
  return process.env['JOBQUEUE_OPERATOR_BIN'] || join(repoDir, 'target/debug/jobqueue-operator');
}

/** Polls `probe` until it returns a value other than undefined/false; throws after the deadline. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  deadlineMs = DEADLINE_MS,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A free loopback port (not 6379). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((ok, fail) => {
      const srv = createServer();
      srv.once('error', fail);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => ok(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    if (port !== 6379 && port !== 0) return port;
  }
}

/** A generic command sender for test assertions, standalone or Cluster. */
export interface Admin {
  call(key: string, args: string[]): Promise<unknown>;
  close(): Promise<void>;
}

/** One redis-server process. */
export class RedisServer {
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly child: ChildProcess,
    private readonly log: () => string,
  ) {}

  static async start(extra: string[] = []): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'jobqueue-ts-redis-'));
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra];
    let out = '';
    const child = track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const server = new RedisServer(port, dir, child, () => out);
    await eventually(`redis-server on port ${port} answering PING`, async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${out}`);
      return (await cli(port, ['PING'])).trim() === 'PONG';
    }, 10_000);
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  output(): string {
    return this.log();
  }

  stop(): void {
    this.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const execFileP = promisify(execFile);

/** `redis-cli -p port args...`, stdout. */
export async function cli(port: number, args: string[]): Promise<string> {
  const { stdout } = await execFileP('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout;
}

/** A standalone server or a three-master Redis Cluster. */
export interface Topology {
  name: 'single' | 'cluster';
  url: string;
  admin(): Promise<Admin>;
  stop(): void;
}

export async function single(): Promise<Topology> {
  const server = await RedisServer.start();
  return {
    name: 'single',
    url: server.url,
    admin: async () => {
      const c = createClient({ url: server.url, RESP: 2 });
      c.on('error', () => {});
      await c.connect();
      return { call: (_k, args) => c.sendCommand(args), close: () => c.close() };
    },
    stop: () => server.stop(),
  };
}

/** Three masters formed with `redis-cli --cluster create`; ready once every node says cluster_state:ok. */
export async function cluster(): Promise<Topology> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < 3; i++) {
    const bus = await freePort();
    nodes.push(
      await RedisServer.start([
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', '5000', '--cluster-port', String(bus),
      ]),
    );
  }
  const stop = (): void => nodes.forEach((n) => n.stop());
  try {
    await execFileP('redis-cli', [
      '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes',
    ]);
    await eventually('cluster_state:ok on every node', async () => {
      for (const n of nodes) {
        const info = await cli(n.port, ['CLUSTER', 'INFO']);
        if (!info.includes('cluster_state:ok') || !info.includes('cluster_known_nodes:3')) return false;
      }
      return true;
    });
  } catch (e) {
    stop();
    throw e;
  }
  const url = `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  return {
    name: 'cluster',
    url,
    admin: async () => {
      const c = createCluster({
        RESP: 2,
        rootNodes: nodes.map((n) => ({ socket: { host: '127.0.0.1', port: n.port } })),
      });
      c.on('error', () => {});
      await c.connect();
      return { call: (k, args) => c.sendCommand(k, false, args), close: () => c.close() };
    },
    stop,
  };
}

/** A JobQueue manifest for local mode (namespace default). */
export function jobQueueYaml(name: string, delivery: string): string {
  return `apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata:
  name: ${name}
spec:
  delivery:
${delivery
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

/** A running `jobqueue-operator run --local` on a directory of manifests. */
export class Operator {
  private constructor(
    readonly dir: string,
    private readonly child: ChildProcess,
    private readonly out: () => string,
  ) {}

  /**
   * Writes `manifests` (file name → YAML) and starts the operator against `url`; returns once
   * every queue's stream `streams` has its group, settings and the function library.
   */
  static async start(url: string, manifests: Record<string, string>, streams: string[], admin: Admin): Promise<Operator> {
    const dir = mkdtempSync(join(tmpdir(), 'jobqueue-ts-local-'));
    for (const [name, text] of Object.entries(manifests)) writeFileSync(join(dir, name), text);
    const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: 'warn' };
    for (const k of Object.keys(env)) {
      if (k === 'REDIS_URL' || k.startsWith('JOBQUEUE_') || k === 'JANITOR_INTERVAL') delete env[k];
    }
    let out = '';
    const child = track(
      spawn(operatorBin(), ['run', '--local', dir, '--redis', url, '--metrics-addr', 'off', '--janitor-interval', '200ms'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const op = new Operator(dir, child, () => out);
    try {
      for (const stream of streams) {
        await eventually(`the operator provisioning ${stream}`, async () => {
          if (child.exitCode !== null) throw new Error(`operator exited ${child.exitCode}: ${out}`);
          const prefix = stream.includes('{') ? stream : `{${stream}}`;
          const version = await admin.call(stream, ['FCALL_RO', 'jobqueue_version', '0']);
          const groups = (await admin.call(stream, ['XINFO', 'GROUPS', stream])) as unknown[][];
          const settings = await admin.call(stream, ['EXISTS', `${prefix}:settings`]);
          return Number(version) >= 4 && groups.length > 0 && Number(settings) === 1;
        });
      }
    } catch (e) {
      op.stop();
      throw new Error(`${String(e)}\noperator output:\n${out}`);
    }
    return op;
  }

  output(): string {
    return this.out();
  }

  stop(): void {
    this.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The states job `id` went through, read from the queue's events stream. */
export async function jobStates(admin: Admin, stream: string, id: string): Promise<string[]> {
  const events = `${stream.includes('{') ? stream : `{${stream}}`}:events`;
  const entries = (await admin.call(stream, ['XRANGE', events, '-', '+'])) as [string, string[]][];
  const states: string[] = [];
  for (const [, f] of entries) {
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < f.length; i += 2) m.set(f[i] as string, f[i + 1] as string);
    if (m.get('job') === id && !m.has('progress')) states.push(`${m.get('state')}@${m.get('attempt')}`);
  }
  return states;
}
