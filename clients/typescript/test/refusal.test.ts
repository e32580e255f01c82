import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { ConnectError, LibraryError, Queue, Worker } from '@jobqueue/client';

import { RedisServer, cli, freePort, missingTools } from './support.js';

describe('a Redis the operator did not provision', { skip: missingTools(false) ?? false }, () => {
  let server: RedisServer;
  before(async () => {
    server = await RedisServer.start();
  });
  after(() => server?.stop());

  it('is refused without the jobqueue library, by producers and workers', async () => {
    const stream = 'jobqueue:{default/none}';
    await assert.rejects(Queue.fromUrl(server.url, stream), (e: unknown) => {
      assert.ok(e instanceof LibraryError);
      assert.equal(
        e.message,
        'the jobqueue function library is not loaded: is the queue provisioned by jobqueue-operator?',
      );
      return true;
    });
    await assert.rejects(
      Worker.connect({ url: server.url, stream }, { handler: () => undefined, logger: () => {} }),
      LibraryError,
    );
  });

  it('is refused with a library older than revision 4', async () => {
    const old = "#!lua name=jobqueue\nredis.register_function{function_name='jobqueue_version', flags={'no-writes'}, callback=function() return 3 end}";
    assert.equal((await cli(server.port, ['FUNCTION', 'LOAD', 'REPLACE', old])).trim(), 'jobqueue');
    await assert.rejects(Queue.fromUrl(server.url, 'jobqueue:{default/old}'), /revision 3, this client needs 4/);
  });

  it('an unreachable Redis is a ConnectError once the connect timeout passes, without the password', async () => {
    const port = await freePort();
    for (const url of [`redis://:hunter2@127.0.0.1:${port}`, `redis+cluster://:hunter2@127.0.0.1:${port}`]) {
      await assert.rejects(Queue.fromUrl(url, 's', { connectTimeout: 300 }), (e: unknown) => {
        assert.ok(e instanceof ConnectError, String(e));
        assert.match(e.message, new RegExp(`cannot connect to Redis at .*127\\.0\\.0\\.1:${port}`));
        assert.doesNotMatch(e.message, /hunter2/);
        return true;
      });
    }
  });
});
