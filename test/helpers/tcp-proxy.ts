/**
 * A TCP proxy for network faults between two real processes: cut() partitions
 * them while everything else keeps working. It forwards any TCP protocol: the
 * cluster tests put it between one node and Redis, the client tests between
 * the client library and a server (HTTP), where `accepted` counts the
 * connection attempts of a client backing off.
 */
import net from 'node:net';
import type { Test } from 'tap';

export interface Proxy {
  port: number;
  /** redis://127.0.0.1:PORT, for a node's --redis */
  url: string;
  /** Connections currently forwarded. */
  readonly connections: number;
  /** Every connection the proxy received since it started, those closed at once while cut included. */
  readonly accepted: number;
  /** A partition: every forwarded connection is cut, and new ones are closed at once, until heal(). */
  cut(): void;
  heal(): void;
}

/**
 * A TCP proxy to 127.0.0.1:target. `delayMs` holds each new connection that
 * long before connecting it (a slow network). Closed at the end of `t`.
 */
export async function startProxy(t: Test, target: number, { delayMs = 0 } = {}): Promise<Proxy> {
  const pairs = new Set<[net.Socket, net.Socket | undefined]>();
  let down = false;
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    if (down) {
      client.destroy();
      return;
    }
    const pair: [net.Socket, net.Socket | undefined] = [client, undefined];
    pairs.add(pair);
    const close = (): void => {
      pairs.delete(pair);
      client.destroy();
      pair[1]?.destroy();
    };
    client.on('error', close);
    client.on('close', close);
    client.pause();
    const open = (): void => {
      if (down || client.destroyed) return close();
      const upstream = net.connect({ host: '127.0.0.1', port: target });
      pair[1] = upstream;
      upstream.on('error', close);
      upstream.on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    };
    if (delayMs > 0) setTimeout(open, delayMs);
    else open();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const cutAll = (): void => {
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b?.destroy();
    }
    pairs.clear();
  };
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        cutAll();
        server.close(() => resolve());
        setTimeout(resolve, 2000).unref();
      }),
  );
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get connections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    cut() {
      down = true;
      cutAll();
    },
    heal() {
      down = false;
    },
  };
}
