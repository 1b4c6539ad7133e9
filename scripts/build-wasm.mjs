// Compiles the AssemblyScript kernels (assembly/) into the four builds the wasm backend chooses from:
// {relaxed SIMD, plain SIMD} x {threads over a shared memory, single-threaded}. Output: build/*.wasm, or the folder in
// ATTEND_WASM_OUT (a trial build that leaves build/ alone while others load it).

import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const asc = join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
const out = process.env.ATTEND_WASM_OUT ? resolve(process.env.ATTEND_WASM_OUT) : join(root, 'build');
mkdirSync(out, { recursive: true });

const builds = [];
for (const simd of ['relaxed', 'simd']) {
  for (const threads of ['mt', 'st']) {
    const args = [
      asc, join(root, 'assembly', 'index.ts'),
      '-O3', '--noAssert', '--runtime', 'stub',
      '--enable', 'simd', '--importMemory', '--initialMemory', '1', '--maximumMemory', '65536',
      '-o', join(out, `attend-${simd}-${threads}.wasm`),
    ];
    if (simd === 'relaxed') args.push('--enable', 'relaxed-simd');
    if (threads === 'mt') args.push('--enable', 'threads', '--sharedMemory');
    builds.push(args);
  }
}

// As many compiler processes at once as there are cores.
const queue = [...builds];
async function worker() {
  for (let args = queue.shift(); args; args = queue.shift()) {
    try {
      await run(process.execPath, args, { cwd: root });
    } catch (e) {
      process.stderr.write(`${e.stdout ?? ''}${e.stderr ?? ''}`);
      throw new Error(`build-wasm: asc failed for ${args[args.indexOf('-o') + 1]}`);
    }
  }
}
await Promise.all(Array.from({ length: Math.min(builds.length, availableParallelism()) }, worker));
console.log(`build-wasm: ${builds.length} builds in ${out}`);
