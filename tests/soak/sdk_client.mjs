// A soak client on the official SDK (centrifuge 5.8.0, JSON or protobuf build) over http_stream: its
// subscriptions are recoverable and positioned, so the SDK itself resubscribes with recover/offset/epoch
// after every reconnect; the events it emits drive the ledger Tracks. Built directly on the Centrifuge
// class (not the test library's newClient, which records every request a client makes: a soak would
// grow without bound).
//
// Threads: Node's event loop only. Invariant: a Track is suspended from `subscribing` until the next
// `subscribed`, whose wasRecovering/recovered decide whether its window goes on.
import { Centrifuge } from '../integration/lib/sdk.js';
import { Centrifuge as CentrifugePb } from 'centrifuge/build/protobuf';

const decoder = new TextDecoder();

export class SdkClient {
  /** CTX as for RawClient plus home() -> the node the SDK's stream goes to. PROTOBUF picks the build. */
  constructor(ctx, { id, channels, protobuf }) {
    this.ctx = ctx;
    this.kind = protobuf ? 'sdk-pb' : 'sdk-json';
    this.id = id;
    this.user = `u${id}`;
    this.retired = false;
    const home = ctx.home();
    const emu = ctx.nodes()[Math.floor(Math.random() * ctx.nodes().length)] || home;
    const Sdk = protobuf ? CentrifugePb : Centrifuge;
    this.c = new Sdk([{ transport: 'http_stream', endpoint: `${home.base}/connection/http_stream` }], {
      emulationEndpoint: `${emu.base}/emulation`,
      token: ctx.token(this.user),
      timeout: 10000,
      minReconnectDelay: 200,
      maxReconnectDelay: 3000,
    });
    this.c.on('error', () => { ctx.stats.sdkErrors++; });
    this.c.on('connecting', (e) => { if (e.code === 3010) ctx.ledger.told.disconnect_3010++; });
    this.c.on('disconnected', () => {
      // Terminal for the SDK (e.g. the API's 3503): an application would connect again; so do we.
      if (!this.retired) setTimeout(() => { if (!this.retired) this.c.connect(); }, 500 + Math.random() * 1000);
    });
    this.tracks = new Map();
    for (const ch of channels) {
      const t = ctx.ledger.newTrack(ch, `${this.kind}#${id}`);
      this.tracks.set(ch, t);
      const sub = this.c.newSubscription(ch, { recoverable: true, positioned: true });
      sub.on('subscribing', (e) => {
        if (e.code === 2500) ctx.ledger.told.unsub_2500++;
        t.suspend();
      });
      sub.on('subscribed', (e) => {
        t.subscribed({ was_recovering: e.wasRecovering, recovered: e.recovered,
          epoch: e.streamPosition && e.streamPosition.epoch, offset: e.streamPosition && e.streamPosition.offset });
      });
      sub.on('unsubscribed', () => t.close());
      sub.on('publication', (e) => {
        let data = e.data;
        if (data instanceof Uint8Array) {
          try {
            data = JSON.parse(decoder.decode(data));
          } catch {
            ctx.stats.badFrames++;
            return;
          }
        }
        t.publication(data, e.offset);
      });
      sub.on('error', () => { ctx.stats.sdkErrors++; });
      sub.subscribe();
    }
  }

  start() {
    this.ctx.stats.connects++;
    this.c.connect();
  }

  /** The SDK offers one way to drop a connection: disconnect(); with RECOVER it connects again. */
  kill(how, recover) {
    this.ctx.stats.kills['sdk-disconnect'] = (this.ctx.stats.kills['sdk-disconnect'] || 0) + 1;
    if (!recover) {
      this.retired = true;
      for (const t of this.tracks.values()) t.close();
      this.c.disconnect();
      this.c.removeAllListeners();
      this.ctx.onGone(this);
      return;
    }
    this.c.disconnect(); // the 'disconnected' handler connects again; subscriptions recover
  }
}
