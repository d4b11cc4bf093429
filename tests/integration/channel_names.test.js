// Channel names from clients must be text (README "Channel names"): valid UTF-8 without control
// characters (C0, DEL, C1). Anything else is refused with error 107 "bad request" by the one channel
// check that client subscribe, publish, history, presence and the server API share, so such a name
// never reaches JSON output (where invalid UTF-8 broke the frame) or a log line (where an escape
// sequence reached the operator's terminal).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, BASE_CONFIG, API_KEY } from './lib/server.js';
import { api } from './lib/http.js';
import { connectRaw, closeAllRaw, call } from './lib/raw.js';
import { cmd, delimited, emulationBody, emulatePb, openPbStream, parse } from './lib/pb.js';

const BAD_TEXT = ['\u001b[2J', 'news\n[info] fake log line', 'del\u007f', 'c1\u0085x', 'tab\there'];

async function rawPb(base) {
  const s = await openPbStream(base);
  const result = parse(parse(await s.next())[5][0]);
  s.session = result[9][0].toString();
  s.node = result[10][0].toString();
  s.send = (command) => emulatePb(base, emulationBody(s.node, s.session, delimited(command)));
  return s;
}

describe('channel names must be UTF-8 text without control characters', () => {
  let srv;
  before(async () => {
    srv = await startServer({ ...BASE_CONFIG, presence: true, history_size: 10, history_ttl: '60s' });
  });
  after(async () => {
    closeAllRaw();
    await stopAll();
  });

  for (const channel of BAD_TEXT) {
    it(`JSON client: subscribe/publish/history/presence to ${JSON.stringify(channel)} ⇒ error 107`, async () => {
      const s = await connectRaw(srv.base);
      const commands = [
        { subscribe: { channel } },
        { publish: { channel, data: { x: 1 } } },
        { history: { channel, limit: 1 } },
        { presence: { channel } },
        { presence_stats: { channel } },
      ];
      let id = 2;
      for (const c of commands) {
        const reply = await call(s, { ...c, id });
        assert.deepEqual(reply.error, { code: 107, message: 'bad request' }, JSON.stringify({ c, reply }));
        id++;
      }
      s.close();
    });
  }

  it('protobuf client: a channel that is not valid UTF-8 ⇒ error 107 (subscribe and publish)', async () => {
    const s = await rawPb(srv.base);
    const names = [Buffer.from([0x61, 0xff, 0x62]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from([0xe2, 0x82]), Buffer.from([0x1b, 0x5b, 0x32, 0x4a])];
    let id = 2;
    for (const name of names) {
      for (const command of [cmd.subscribe(id, name), cmd.publish(id + 1, name, '{}')]) {
        assert.equal(await s.send(command), 204);
        const reply = parse(await s.next());
        assert.ok(reply[2], `an error reply for ${name.toString('hex')}: ${Object.keys(reply)}`);
        assert.equal(Number(parse(reply[2][0])[1][0]), 107, name.toString('hex'));
      }
      id += 2;
    }
    // still connected and working
    assert.equal(await s.send(cmd.subscribe(40, 'fine')), 204);
    assert.deepEqual(await s.next(), Buffer.from('08283200', 'hex'));
    s.close();
  });

  it('server API: publish, history and presence to such a channel ⇒ error 107', async () => {
    for (const channel of BAD_TEXT) {
      for (const [method, params] of [['publish', { channel, data: {} }], ['history', { channel }], ['presence', { channel }]]) {
        const r = await api(srv.base, method, params, { key: API_KEY });
        assert.equal(r.status, 200);
        assert.deepEqual(r.json && r.json.error, { code: 107, message: 'bad request' }, `${method} ${JSON.stringify(channel)}`);
      }
    }
  });

  it('names in other scripts and symbols are fine', async () => {
    const s = await connectRaw(srv.base);
    let id = 2;
    for (const channel of ['café', 'канал', '频道-☕', 'emoji-😀']) {
      const reply = await call(s, { subscribe: { channel }, id });
      assert.equal(reply.error, undefined, channel);
      assert.deepEqual(reply.subscribe, {}, channel);
      id++;
    }
    s.close();
  });
});
