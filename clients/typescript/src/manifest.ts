/** Reading a JobQueue manifest (YAML, as applied with kubectl or run with `run --local`). */

import { readFile } from 'node:fs/promises';

import { parseAllDocuments } from 'yaml';

import { ConfigError } from './errors.js';
import { defaultStream } from './keys.js';

/** What a client needs from a JobQueue manifest. */
export interface QueueManifest {
  namespace: string;
  name: string;
  stream: string;
  group: string;
  /** `spec.redis.url` when the manifest names one in plain text. */
  redisUrl?: string;
}

/** The namespace of a manifest that names none (as kubectl and local mode use). */
export const DEFAULT_NAMESPACE = 'default';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown, field: string, file: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') {
    throw new ConfigError(`${file}: ${field}: must be a non-empty string`);
  }
  return v;
}

/**
 * The JobQueue in the YAML file at `path` (the one named `name` when the file has several).
 * Throws `ConfigError` naming the file and field.
 */
export async function readManifest(path: string, name?: string): Promise<QueueManifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: cannot read the manifest: ${(e as Error).message}`);
  }
  const found: QueueManifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (!('errors' in doc) || doc.errors.length > 0) {
      const detail = 'errors' in doc ? doc.errors[0]?.message : 'not a YAML document';
      throw new ConfigError(`${path}: not valid YAML: ${detail ?? ''}`);
    }
    const obj: unknown = doc.toJS();
    if (!isObject(obj) || obj['kind'] !== 'JobQueue') continue;
    const meta = isObject(obj['metadata']) ? obj['metadata'] : {};
    const spec = isObject(obj['spec']) ? obj['spec'] : {};
    const queueName = str(meta['name'], 'metadata.name', path);
    if (queueName === undefined) throw new ConfigError(`${path}: metadata.name: required`);
    const namespace = str(meta['namespace'], 'metadata.namespace', path) ?? DEFAULT_NAMESPACE;
    const redis = isObject(spec['redis']) ? spec['redis'] : {};
    const redisUrl = str(redis['url'], 'spec.redis.url', path);
    found.push({
      namespace,
      name: queueName,
      stream: str(spec['stream'], 'spec.stream', path) ?? defaultStream(namespace, queueName),
      group: str(spec['consumerGroup'], 'spec.consumerGroup', path) ?? 'workers',
      ...(redisUrl === undefined ? {} : { redisUrl }),
    });
  }
  const chosen = name === undefined ? found : found.filter((q) => q.name === name);
  if (chosen.length === 0) {
    throw new ConfigError(`${path}: no JobQueue${name === undefined ? '' : ` named ${name}`} in the file`);
  }
  if (chosen.length > 1) {
    throw new ConfigError(
      `${path}: ${chosen.length} JobQueues (${chosen.map((q) => q.name).join(', ')}): say which with the name option`,
    );
  }
  return chosen[0] as QueueManifest;
}
