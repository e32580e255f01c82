import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';

import { Queue } from '@jobqueue/client';

import { scenarios, stream, withEnvironment } from './scenarios.js';
import { single } from './support.js';

withEnvironment('a single redis-server', single, (get) => {
  scenarios(get);

  it('Queue.fromManifest takes the stream and group from a JobQueue manifest', async () => {
    const env = get();
    const path = join(env.operator.dir, 'enqueue.yaml');
    const q = await Queue.fromManifest(path, { url: env.topology.url });
    try {
      assert.equal(q.stream, stream('enqueue'));
      assert.equal(q.group, 'workers');
      const id = await q.enqueue({ from: 'manifest' });
      assert.equal((await q.getJob(id))?.state, 'queued');
    } finally {
      await q.close();
    }
    const dir = mkdtempSync(join(tmpdir(), 'jobqueue-ts-manifest-'));
    const other = join(dir, 'queue.yaml');
    writeFileSync(
      other,
      '# two documents: a Secret is skipped\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n' +
        'apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata: {name: x, namespace: shop}\n' +
        'spec: {stream: "jobs:{shop}", consumerGroup: senders}\n',
    );
    const custom = await Queue.fromManifest(other, { url: env.topology.url });
    assert.equal(custom.stream, 'jobs:{shop}');
    assert.equal(custom.group, 'senders');
    await custom.close();
    await assert.rejects(Queue.fromManifest(other, { url: 'memcached://127.0.0.1:1' }), /scheme must be/);
    await assert.rejects(Queue.fromManifest(other, { url: env.topology.url, name: 'y' }), /no JobQueue named y/);
    rmSync(dir, { recursive: true });
  });
});
