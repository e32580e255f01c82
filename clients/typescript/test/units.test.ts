import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ConfigError, QueueKeys, heartbeatPeriod, parseRedisUrl, uuidv7 } from '@jobqueue/client';

describe('Redis URLs', () => {
  it('takes standalone URLs as they are and cluster URLs as seed lists', () => {
    assert.deepEqual(parseRedisUrl('redis://:pw@127.0.0.1:7000/2'), { kind: 'standalone', url: 'redis://:pw@127.0.0.1:7000/2' });
    assert.equal(parseRedisUrl('rediss://r.example.com:6380').kind, 'standalone');
    assert.deepEqual(parseRedisUrl('redis+cluster://127.0.0.1:7000,127.0.0.1:7001'), {
      kind: 'cluster',
      tls: false,
      nodes: [
        { host: '127.0.0.1', port: 7000 },
        { host: '127.0.0.1', port: 7001 },
      ],
    });
    assert.deepEqual(parseRedisUrl('rediss+cluster://app:s%40cret@r1:7000,r2'), {
      kind: 'cluster',
      tls: true,
      username: 'app',
      password: 's@cret',
      nodes: [
        { host: 'r1', port: 7000 },
        { host: 'r2', port: 6379 },
      ],
    });
  });

  it('refuses other schemes and bad seeds without echoing the password', () => {
    assert.throws(() => parseRedisUrl('http://:hunter2@x:1'), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /redis:\/\/, rediss:\/\/, redis\+cluster:\/\/ or rediss\+cluster:\/\//);
      assert.doesNotMatch(e.message, /hunter2/);
      return true;
    });
    assert.throws(() => parseRedisUrl('redis+cluster://:hunter2@h:99999'), (e: unknown) => {
      assert.match(String(e), /out of range/);
      assert.doesNotMatch(String(e), /hunter2/);
      return true;
    });
    assert.throws(() => parseRedisUrl('redis+cluster://h:1/3'), /only database 0/);
  });
});

describe('queue keys', () => {
  it('share the stream\'s hash tag, or make the stream the tag', () => {
    const tagged = new QueueKeys('jobqueue:{default/emails}');
    assert.equal(tagged.settings, 'jobqueue:{default/emails}:settings');
    assert.equal(tagged.events, 'jobqueue:{default/emails}:events');
    assert.equal(tagged.job('j1'), 'jobqueue:{default/emails}:job:j1');
    assert.equal(new QueueKeys('emails').settings, '{emails}:settings');
  });

  it('refuse a stream whose keys could not share a slot', () => {
    assert.throws(() => new QueueKeys('a}b'), /hash tag/);
    assert.throws(() => new QueueKeys('a{}b'), /hash tag/); // an empty tag is no tag
    assert.throws(() => new QueueKeys(''), /stream/);
    assert.throws(() => new QueueKeys('two words'), /white space/);
  });
});

it('job ids are UUID v7 carrying the time', () => {
  const at = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
  const id = uuidv7(at);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), at);
  assert.notEqual(uuidv7(at), id);
});

it('heartbeats come every half visibility timeout, at most every 5 s', () => {
  assert.equal(heartbeatPeriod(2000), 1000);
  assert.equal(heartbeatPeriod(300_000), 5000);
  assert.equal(heartbeatPeriod(50), 100);
});
