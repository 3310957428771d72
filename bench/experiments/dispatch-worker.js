// Worker-thread side of bench/experiments/dispatch.js. One file, several roles (workerData.role):
//
//   'owner'              owns channels; receives batches of [op, id, channel, message]
//                        on MessagePorts from the mesh, appends each message to its
//                        channel's in-memory array, replies [id, time] per op, one reply
//                        batch per received batch, on the port the batch came from.
//   'dispatcher'         issues the ops (variants structured, msgpackr, unbatched) to the
//                        owner threads over its mesh ports, keeping a bounded window
//                        in flight, batching per event-loop turn and per destination.
//   'piscina-dispatcher' the same ops through a Piscina 5 pool whose custom loadBalancer
//                        sends each task to the worker that owns the channel.
//   'inline'             no thread hop at all: the dispatcher applies the ops itself
//                        (the floor, for reference).
//
// Control messages from the main thread arrive on parentPort:
//   {cmd:'run', ops, warmupOps}  -> after the warm-up {type:'warmed'}, then waits for
//   {cmd:'go'}                   -> {type:'done', elapsedMs, completed, errors}

import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';

const OP_PUT = 1;
/** postMessage calls (or tasks) from the dispatcher to the owners during the measured ops */
const stats = { posts: 0 };
const { role } = workerData;

/** Per-thread channel store: channel -> {last, messages[]} (bounded like a server buffer). */
function makeStore(cap) {
  const channels = new Map();
  return function put(channel, message) {
    let ch = channels.get(channel);
    if (ch === undefined) channels.set(channel, (ch = { last: 0, messages: [] }));
    const now = Date.now() * 1000;
    ch.last = now > ch.last ? now : ch.last + 1;
    ch.messages.push(message);
    if (ch.messages.length > cap) ch.messages.shift();
    return ch.last;
  };
}

// ---------------------------------------------------------------- owner
if (role === 'owner') {
  const put = makeStore(workerData.bufferCap);
  const encoding = workerData.encoding; // 'structured' | 'msgpackr'
  let packr = null;
  if (encoding === 'msgpackr') {
    const { Packr } = await import('msgpackr');
    packr = new Packr({ useRecords: false });
  }
  const handleOps = (ops) => {
    const replies = new Array(ops.length);
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      // op = [OP_PUT, id, channel, message]
      replies[i] = [op[1], op[0] === OP_PUT ? put(op[2], op[3]) : -1];
    }
    return replies;
  };
  const attach = (port) => {
    if (encoding === 'msgpackr') {
      port.on('message', (ab) => {
        const replies = handleOps(packr.unpack(new Uint8Array(ab)));
        const buf = packr.pack(replies);
        // pack() returns a view into msgpackr's reusable buffer: copy into an
        // ArrayBuffer of our own and transfer that (zero-copy across threads).
        const out = new ArrayBuffer(buf.length);
        new Uint8Array(out).set(buf);
        port.postMessage(out, [out]);
      });
    } else {
      port.on('message', (ops) => {
        // unbatched variant sends a single op, batched ones an array of ops
        if (typeof ops[0] === 'number') port.postMessage(handleOps([ops])[0]);
        else port.postMessage(handleOps(ops));
      });
    }
  };
  parentPort.on('message', (m) => {
    if (m.cmd === 'ports') {
      for (const p of m.ports) attach(p);
      parentPort.postMessage({ type: 'ready' });
    }
  });
}

// ---------------------------------------------------------------- shared op generator
function makeOps(cfg) {
  const { channels, owners, messageBytes } = cfg;
  const names = new Array(channels);
  const ownerOf = new Uint8Array(channels);
  for (let c = 0; c < channels; c++) {
    names[c] = `channel-${c}`;
    // FNV-1a, as a server would hash a channel name to its owner
    let h = 0x811c9dc5;
    for (let j = 0; j < names[c].length; j++) h = Math.imul(h ^ names[c].charCodeAt(j), 0x01000193);
    ownerOf[c] = (h >>> 0) % owners;
  }
  const pad = 'm'.repeat(messageBytes);
  let seed = 12345;
  return {
    names,
    ownerOf,
    /** next channel index, from a fixed-seed LCG so every variant sees the same sequence */
    nextChannel() {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % channels;
    },
    reset() {
      seed = 12345;
    },
    /** a fresh messageBytes-long string per op, as a parsed request would give */
    message(id) {
      const s = id.toString(36);
      return s + pad.slice(s.length);
    },
  };
}

/**
 * Drives `total` ops through `submit` with at most `window` outstanding.
 * submit(id, channelIndex, message) must eventually call complete(id, time).
 * flush() (optional) is called once per event-loop turn in which ops were submitted.
 */
function makeDriver(gen, window, submit, flush) {
  let issued = 0;
  let completed = 0;
  let outstanding = 0;
  let total = 0;
  let errors = 0;
  let seen = null;
  let resolveDone = null;
  let flushScheduled = false;
  const doFlush = () => {
    flushScheduled = false;
    flush();
  };
  const pump = () => {
    while (outstanding < window && issued < total) {
      const id = issued++;
      outstanding++;
      submit(id, gen.nextChannel(), gen.message(id));
    }
    if (flush && !flushScheduled) {
      flushScheduled = true;
      setImmediate(doFlush);
    }
  };
  const complete = (id, time) => {
    outstanding--;
    completed++;
    if (!(time > 0) || seen[id] !== 0) errors++;
    seen[id] = 1;
    if (completed === total) {
      const r = resolveDone;
      resolveDone = null;
      r();
    } else if (issued < total && outstanding <= window - 64) {
      // refill in slices, not one op at a time, like a server accepting requests per loop turn
      pump();
    }
  };
  const run = (n) =>
    new Promise((resolve) => {
      issued = 0;
      completed = 0;
      outstanding = 0;
      total = n;
      errors = 0;
      seen = new Uint8Array(n);
      resolveDone = resolve;
      pump();
    }).then(() => ({ completed, errors }));
  return { run, complete };
}

async function runProtocol(driver) {
  parentPort.postMessage({ type: 'ready' });
  const cmd = await new Promise((r) => parentPort.once('message', r));
  await driver.run(cmd.warmupOps);
  parentPort.postMessage({ type: 'warmed' });
  await new Promise((r) => parentPort.once('message', r)); // go
  stats.posts = 0;
  const t0 = performance.now();
  const { completed, errors } = await driver.run(cmd.ops);
  const elapsedMs = performance.now() - t0;
  parentPort.postMessage({ type: 'done', elapsedMs, completed, errors, posts: stats.posts });
}

// ---------------------------------------------------------------- dispatcher (a), (b), unbatched
if (role === 'dispatcher') {
  const cfg = workerData;
  const gen = makeOps(cfg);
  const m = await new Promise((r) => parentPort.once('message', r));
  const ports = m.ports; // one per owner, index = owner
  const batches = ports.map(() => []);
  let driver;
  if (cfg.variant === 'unbatched') {
    driver = makeDriver(
      gen,
      cfg.window,
      (id, c, msg) => {
        stats.posts++;
        ports[gen.ownerOf[c]].postMessage([OP_PUT, id, gen.names[c], msg]);
      },
      null,
    );
    for (const p of ports) p.on('message', (r) => driver.complete(r[0], r[1]));
  } else if (cfg.variant === 'structured') {
    const flush = () => {
      for (let k = 0; k < ports.length; k++) {
        if (batches[k].length === 0) continue;
        ports[k].postMessage(batches[k]);
        stats.posts++;
        batches[k] = [];
      }
    };
    driver = makeDriver(gen, cfg.window, (id, c, msg) => batches[gen.ownerOf[c]].push([OP_PUT, id, gen.names[c], msg]), flush);
    for (const p of ports) {
      p.on('message', (replies) => {
        for (let i = 0; i < replies.length; i++) driver.complete(replies[i][0], replies[i][1]);
      });
    }
  } else if (cfg.variant === 'msgpackr') {
    const { Packr } = await import('msgpackr');
    const packr = new Packr({ useRecords: false });
    const flush = () => {
      for (let k = 0; k < ports.length; k++) {
        if (batches[k].length === 0) continue;
        const buf = packr.pack(batches[k]);
        const ab = new ArrayBuffer(buf.length);
        new Uint8Array(ab).set(buf);
        ports[k].postMessage(ab, [ab]);
        stats.posts++;
        batches[k] = [];
      }
    };
    driver = makeDriver(gen, cfg.window, (id, c, msg) => batches[gen.ownerOf[c]].push([OP_PUT, id, gen.names[c], msg]), flush);
    for (const p of ports) {
      p.on('message', (ab) => {
        const replies = packr.unpack(new Uint8Array(ab));
        for (let i = 0; i < replies.length; i++) driver.complete(replies[i][0], replies[i][1]);
      });
    }
  } else {
    throw new Error(`unknown variant ${cfg.variant}`);
  }
  await runProtocol(driver);
}

// ---------------------------------------------------------------- inline floor
if (role === 'inline') {
  const cfg = workerData;
  const gen = makeOps(cfg);
  const put = makeStore(cfg.bufferCap);
  const pending = [];
  // Same driver and per-turn batching; the "owner" work happens in this thread.
  const driver = makeDriver(
    gen,
    cfg.window,
    (id, c, msg) => pending.push(id, c, msg),
    () => {
      const batch = pending.splice(0);
      for (let i = 0; i < batch.length; i += 3) driver.complete(batch[i], put(gen.names[batch[i + 1]], batch[i + 2]));
    },
  );
  await runProtocol(driver);
}

// ---------------------------------------------------------------- piscina (c)
if (role === 'piscina-dispatcher') {
  const cfg = workerData;
  const gen = makeOps(cfg);
  const { Piscina } = await import('piscina');
  const ownerTag = Array.from({ length: cfg.owners }, (_, k) => ({ owner: k }));
  let ownerThreadIds = [];
  /** @type {import('piscina').PiscinaLoadBalancer} */
  const loadBalancer = (task, workers) => {
    const tag = task[Piscina.queueOptionsSymbol];
    const want = ownerThreadIds[tag.owner];
    for (let i = 0; i < workers.length; i++) {
      if (workers[i].id === want) return workers[i];
    }
    return null; // owner not up yet: Piscina queues the task and retries when a worker frees up
  };
  const pool = new Piscina({
    filename: new URL('./dispatch-piscina-owner.js', import.meta.url).href,
    minThreads: cfg.owners,
    maxThreads: cfg.owners,
    idleTimeout: Infinity,
    // many tasks in flight per worker, as many concurrent requests would put there;
    // the balancer, not the usage count, decides where a task goes
    concurrentTasksPerWorker: cfg.window,
    maxQueue: Infinity,
    atomics: cfg.piscinaAtomics,
    recordTiming: false,
    workerData: { bufferCap: cfg.bufferCap },
    loadBalancer,
  });
  ownerThreadIds = pool.threads.map((t) => t.threadId);
  if (ownerThreadIds.length !== cfg.owners) throw new Error(`piscina started ${ownerThreadIds.length} threads, wanted ${cfg.owners}`);
  let driver;
  driver = makeDriver(
    gen,
    cfg.window,
    (id, c, msg) => {
      const task = { c: gen.names[c], m: msg, [Piscina.queueOptionsSymbol]: ownerTag[gen.ownerOf[c]] };
      stats.posts++;
      pool.run(task).then(
        (time) => driver.complete(id, time),
        () => driver.complete(id, -1),
      );
    },
    null,
  );
  await runProtocol(driver);
  await pool.destroy();
}
