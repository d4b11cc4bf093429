// A TCP proxy on loopback in front of a server (Redis), able to silence the connections that entered
// PUB/SUB mode: their server-to-client bytes are dropped while the sockets stay open, as after a
// failover that leaves a subscriber on a server that no longer gets the publications.
import net from 'node:net';

export async function startProxy(targetPort) {
  const conns = new Set();
  const proxy = { port: 0, silenced: false, subscriberConnections: 0, server: null };
  proxy.server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const c = { client, upstream, subscriber: false };
    conns.add(c);
    client.on('data', (d) => {
      if (!c.subscriber && /SUBSCRIBE/i.test(d.toString('latin1'))) {
        c.subscriber = true;
        proxy.subscriberConnections++;
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!(proxy.silenced && c.subscriber)) client.write(d);
    });
    const end = () => {
      conns.delete(c);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
  proxy.port = proxy.server.address().port;
  proxy.address = `127.0.0.1:${proxy.port}`;
  proxy.close = () => {
    for (const c of conns) {
      c.client.destroy();
      c.upstream.destroy();
    }
    return new Promise((resolve) => proxy.server.close(resolve));
  };
  return proxy;
}
