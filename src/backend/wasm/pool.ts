// The worker pool: workers share the kernels' linear memory and sleep in Atomics.wait until the main
// thread publishes a job; every thread then takes tiles from the job's atomic counter (runJob).
//
// A worker joins a job only while it is open, and the main thread waits only for the workers that joined.
// On a shared machine a worker may be descheduled for milliseconds; the main thread then runs the tiles
// itself and moves on, instead of waiting for that worker to wake up merely to report that it did nothing.

import { evalWorker, isNode } from '#platform';

/**
 * Control words (int32 indices from the control block): generation (bumped per job), workers inside the
 * current job, the job's parameter block, error flag, and the open job's generation (0 once it is closed).
 */
const GEN = 0, ACTIVE = 1, PARAM = 2, ERROR = 3, OPEN = 4;
/**
 * How long a waiting thread spins before it sleeps, in milliseconds. A training step publishes a job every
 * few tens of microseconds of JavaScript; waking a sleeping thread costs tens of microseconds or more (more
 * in a VM), during which the other threads work alone, so each waiter first spins this long: workers on the
 * generation word, the main thread on the count of workers still inside its job (longer than a job's usual
 * tail). Short, because on a machine with more runnable threads than cores a spinning thread burns the
 * time slices the others need (measured: spinning for ~1 ms there made training slower than one thread).
 */
const SPIN_MS = 0.05;
/** Spin iterations between two clock reads. */
const SPIN_CHECK = 64;

// The worker's whole program. It is plain JavaScript run from a string (eval in Node, a Blob URL in
// browsers), so it works the same from src/ under a TypeScript runner and from dist/.
const WORKER_SOURCE = `
const isNode = typeof process === 'object' && typeof require === 'function';
const port = isNode ? require('node:worker_threads').parentPort : self;
const onFirst = (fn) => { if (isNode) port.once('message', fn); else self.onmessage = (e) => fn(e.data); };
onFirst(({ module, memory, ctrl, tid }) => {
  let runJob;
  try {
    const inst = new WebAssembly.Instance(module, { env: { memory, abort() { throw new Error('wasm kernel abort'); } } });
    inst.exports.initKernels();
    runJob = inst.exports.runJob;
  } catch (e) {
    port.postMessage({ error: String(e) });
    return;
  }
  const i32 = new Int32Array(memory.buffer);
  const c = ctrl >> 2, GEN = c + ${GEN}, ACTIVE = c + ${ACTIVE}, PARAM = c + ${PARAM}, ERROR = c + ${ERROR}, OPEN = c + ${OPEN};
  let gen = Atomics.load(i32, GEN);
  port.postMessage({ ready: true });
  for (;;) {
    const t0 = performance.now();
    for (let spin = 1; Atomics.load(i32, GEN) === gen; spin++) {
      if (spin % ${SPIN_CHECK} === 0 && performance.now() - t0 > ${SPIN_MS}) break;
    }
    Atomics.wait(i32, GEN, gen);
    gen = Atomics.load(i32, GEN);
    // Join the job only if it is still open: announce first, then check (the main thread closes, then
    // reads ACTIVE; with sequentially consistent atomics one of the two sees the other).
    Atomics.add(i32, ACTIVE, 1);
    if (Atomics.load(i32, OPEN) === gen) {
      try {
        runJob(Atomics.load(i32, PARAM), tid);
      } catch (e) {
        Atomics.store(i32, ERROR, 1);
      }
    }
    if (Atomics.sub(i32, ACTIVE, 1) === 1) Atomics.notify(i32, ACTIVE);
  }
});
`;

interface PoolWorker {
  postMessage(msg: unknown): void;
  terminate(): unknown;
}


async function spawn(): Promise<{ worker: PoolWorker; onMessage: (fn: (msg: unknown) => void) => void; onError: (fn: (e: unknown) => void) => void }> {
  if (isNode) {
    const worker = await evalWorker(WORKER_SOURCE);
    // An idle pool must not keep the process alive (CLI commands and test runners exit normally).
    worker.unref();
    return { worker, onMessage: (fn) => worker.once('message', fn), onError: (fn) => worker.once('error', fn) };
  }
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
  const worker = new Worker(url);
  URL.revokeObjectURL(url);
  return {
    worker,
    onMessage: (fn) => { worker.onmessage = (e: MessageEvent) => fn(e.data); },
    onError: (fn) => { worker.onerror = (e: ErrorEvent) => fn(e.message); },
  };
}

export class WorkerPool {
  private readonly i32: Int32Array;
  private readonly base: number;
  /** Browsers forbid Atomics.wait on the main thread: there it spins until the workers are done. */
  private readonly canSleep: boolean;

  private constructor(memory: WebAssembly.Memory, ctrl: number, private readonly workers: PoolWorker[]) {
    this.i32 = new Int32Array(memory.buffer);
    this.base = ctrl >> 2;
    this.canSleep = isNode || typeof window === 'undefined';
  }

  /** Starts `count` workers on the shared memory; ctrl is a 20-byte control block in it. */
  static async start(module: WebAssembly.Module, memory: WebAssembly.Memory, ctrl: number, count: number): Promise<WorkerPool> {
    const workers = await Promise.all(Array.from({ length: count }, async (_, i) => {
      const { worker, onMessage, onError } = await spawn();
      await new Promise<void>((resolve, reject) => {
        onMessage((msg) => {
          const m = msg as { ready?: boolean; error?: string };
          if (m.ready) resolve();
          else reject(new Error(`wasm backend: worker ${i + 1} failed to start: ${m.error}`));
        });
        onError((e) => reject(new Error(`wasm backend: worker ${i + 1} failed to start: ${String(e)}`)));
        // tid 0 is the main thread.
        worker.postMessage({ module, memory, ctrl, tid: i + 1 });
      });
      return worker;
    }));
    return new WorkerPool(memory, ctrl, workers);
  }

  /** Workers in the pool (the main thread works too). */
  get size(): number {
    return this.workers.length;
  }

  /**
   * Publishes the job at `param`, runs the main thread's share (tiles until none are left), closes the job,
   * and returns once every worker that joined it is done.
   */
  run(param: number, runMain: () => void): void {
    const i32 = this.i32, b = this.base;
    // Generations are positive int32 (0 marks a closed job); they wrap long before anything can lag that far.
    const gen = (Atomics.load(i32, b + GEN) % 0x7fffffff) + 1;
    Atomics.store(i32, b + PARAM, param);
    Atomics.store(i32, b + OPEN, gen);
    Atomics.store(i32, b + GEN, gen);
    Atomics.notify(i32, b + GEN);
    try {
      runMain();
    } finally {
      Atomics.store(i32, b + OPEN, 0);
      let t0 = 0;
      for (let spin = 1; ; spin++) {
        const inside = Atomics.load(i32, b + ACTIVE);
        if (inside === 0) break;
        if (!this.canSleep || spin % SPIN_CHECK !== 0) continue;
        if (t0 === 0) t0 = performance.now();
        else if (performance.now() - t0 > SPIN_MS) Atomics.wait(i32, b + ACTIVE, inside);
      }
    }
    if (Atomics.exchange(i32, b + ERROR, 0) !== 0) throw new Error('wasm backend: a kernel failed in a worker thread');
  }

  terminate(): void {
    for (const w of this.workers) w.terminate();
  }
}
