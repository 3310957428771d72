// The part of autocannon (which ships no types) that ./autocannon-child.js uses.

declare module 'autocannon' {
  interface Options {
    url: string;
    connections: number;
    duration: number;
    requests: { method: string; path: string; headers?: Record<string, string>; body?: string }[];
    timeout: number;
  }

  interface Result {
    requests: { total: number };
    errors: number;
    non2xx: number;
    timeouts: number;
    duration: number;
  }

  interface Instance {
    on(event: 'response', listener: (client: unknown, status: number, bytes: number, ms: number) => void): this;
  }

  function autocannon(opts: Options, done: (err: Error | null, result: Result) => void): Instance;

  namespace autocannon {
    export type { Result };
  }

  export default autocannon;
}
