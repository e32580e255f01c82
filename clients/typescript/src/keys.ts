/**
 * Key naming of one queue, as the operator provisions it: every key shares the stream's Redis
 * Cluster slot. `<prefix>` is the stream key when it carries a hash tag (`jobqueue:{ns/name}`),
 * else `{<stream>}`.
 */

import { ConfigError } from './errors.js';

/** The hash tag of `key` as Redis Cluster computes it (text between the first `{` and the next `}`), if any. */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open < 0) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close <= open + 1) return undefined;
  return key.slice(open + 1, close);
}

/** The default stream key of the JobQueue `name` in `namespace`. */
export function defaultStream(namespace: string, name: string): string {
  return `jobqueue:{${namespace}/${name}}`;
}

/** The keys of the queue whose stream is `stream`. */
export class QueueKeys {
  readonly prefix: string;

  constructor(readonly stream: string) {
    if (stream === '' || /\s/.test(stream)) {
      throw new ConfigError(`stream: must be a non-empty key without white space; got ${JSON.stringify(stream)}`);
    }
    if (hashTag(stream) !== undefined) {
      this.prefix = stream;
    } else if (stream.includes('}')) {
      throw new ConfigError(
        `stream: ${JSON.stringify(stream)} has a "}" but no hash tag, so its keys cannot share one Cluster slot`,
      );
    } else {
      this.prefix = `{${stream}}`;
    }
  }

  get settings(): string {
    return `${this.prefix}:settings`;
  }

  get events(): string {
    return `${this.prefix}:events`;
  }

  job(id: string): string {
    return `${this.prefix}:job:${id}`;
  }
}
