// The shipped etc/streamd.conf holds no usable secret (README "Set up and run", streamd.conf(5)
// api_key): no API key works against it until one is set (the Debian package generates one at install),
// and streamd says so when it starts.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, stopAll } from './lib/server.js';
import { api } from './lib/http.js';

const shipped = path.join(process.env.STREAMD_SOURCE_DIR || path.resolve('..'), 'etc', 'streamd.conf');

describe('the shipped etc/streamd.conf', () => {
  after(async () => {
    await stopAll();
  });

  it('has no usable API key: every key (the old "change-me" too) gets 401, and a warning is logged', async () => {
    const srv = await startServer({}, { args: ['-c', shipped, '-p', '0'] });
    for (const key of ['change-me', '', 'x', undefined]) {
      const r = await api(srv.base, 'publish', { channel: 'c', data: {} }, { key });
      assert.equal(r.status, 401, `key ${JSON.stringify(key)}`);
    }
    assert.match(srv.stderr, /api_key is empty: the server API refuses every request/);
  });
});
