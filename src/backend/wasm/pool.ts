// The worker pool: workers share the kernels' linear memory and sleep in Atomics.wait until the main
// thread publishes a job; every thread then takes tiles from the job's atomic counter (runJob).

/** Control words (int32 indices from the control block): generation, pending workers, job, error flag. */
const GEN = 0, PENDING = 1, PARAM = 2, ERROR = 3;
/** Spins of the main thread on the pending count before it sleeps (Node) or while it waits (browsers). */
const MAIN_SPIN = 4000;

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
  const GEN = (ctrl >> 2) + ${GEN}, PENDING = (ctrl >> 2) + ${PENDING}, PARAM = (ctrl >> 2) + ${PARAM}, ERROR = (ctrl >> 2) + ${ERROR};
  let gen = Atomics.load(i32, GEN);
  port.postMessage({ ready: true });
  for (;;) {
    Atomics.wait(i32, GEN, gen);
    gen = Atomics.load(i32, GEN);
    try {
      runJob(Atomics.load(i32, PARAM), tid);
    } catch (e) {
      Atomics.store(i32, ERROR, 1);
    }
    if (Atomics.sub(i32, PENDING, 1) === 1) Atomics.notify(i32, PENDING);
  }
});
`;

interface PoolWorker {
  postMessage(msg: unknown): void;
  terminate(): unknown;
}

const isNode = typeof process === 'object' && typeof process.versions?.node === 'string';

/** Dynamic import that bundlers leave alone (only reached in Node). */
const nodeImport = (name: string): Promise<unknown> => import(/* @vite-ignore */ name);

async function spawn(): Promise<{ worker: PoolWorker; onMessage: (fn: (msg: unknown) => void) => void; onError: (fn: (e: unknown) => void) => void }> {
  if (isNode) {
    const { Worker } = (await nodeImport('node:worker_threads')) as typeof import('node:worker_threads');
    const worker = new Worker(WORKER_SOURCE, { eval: true });
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

  /** Starts `count` workers on the shared memory; ctrl is a 16-byte control block in it. */
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

  /** Publishes the job at `param`, runs the main thread's share, and returns once every worker is done. */
  run(param: number, runMain: () => void): void {
    const i32 = this.i32, b = this.base;
    Atomics.store(i32, b + PARAM, param);
    Atomics.store(i32, b + PENDING, this.workers.length);
    Atomics.add(i32, b + GEN, 1);
    Atomics.notify(i32, b + GEN);
    try {
      runMain();
    } finally {
      for (let spin = 0; ; spin++) {
        const left = Atomics.load(i32, b + PENDING);
        if (left === 0) break;
        if (spin > MAIN_SPIN && this.canSleep) Atomics.wait(i32, b + PENDING, left);
      }
    }
    if (Atomics.exchange(i32, b + ERROR, 0) !== 0) throw new Error('wasm backend: a kernel failed in a worker thread');
  }

  terminate(): void {
    for (const w of this.workers) w.terminate();
  }
}
