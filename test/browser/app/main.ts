// The browser test app: what a user's page does with 'attend' (resolved through package.json "exports" to the built
// dist/browser.js). It loads the gpt2 fixture over HTTP from /gpt2, and again from in-memory Files, checks the
// logits and greedy tokens against PyTorch's, trains 10 steps, on wasm or webgpu; browser.test.ts reads the summary it returns.

import {
  AdamW, AutoModelForCausalLM, crossEntropy, getDefaultDevice, initWasm, initWebGPU, loadSafetensors, manualSeed, ready, saveLoraAdapter, addLora,
  loadLoraAdapter, type Tensor,
} from 'attend';

async function maxAbsDiff(a: Tensor, b: Tensor): Promise<number> {
  const x = await a.data(), y = await b.data();
  if (x.length !== y.length) return Infinity;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(Number(x[i]) - Number(y[i])));
  return m;
}

/** device 'wasm': the CPU kernels (a failed start first, then the retry); 'webgpu': the GPU backend on the page's adapter. */
async function runChecks(device: 'wasm' | 'webgpu'): Promise<Record<string, unknown>> {
  const started = performance.now();
  let badStart = '', variant = '', threads = 0, adapterName = '';
  if (device === 'wasm') {
    // A first start with a wrong wasm folder fails with a clear error; the next call (default location) succeeds.
    badStart = await ready({ wasmBase: '/no-such-folder/' }).then(() => 'started', (e: Error) => e.message);
    await ready({ device: 'wasm' });
    ({ variant, threads } = (await initWasm()).info);
  } else {
    await ready({ device: 'webgpu' });
    adapterName = (await initWebGPU()).ctx.adapterInfo;
  }

  const model = await AutoModelForCausalLM.fromPretrained('/gpt2');
  const ref = await loadSafetensors('/gpt2/ref.safetensors');
  const logits = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits;
  const logitsMaxDiff = await maxAbsDiff(logits, ref['logits']!);

  const out = await model.generate(ref['gen.input_ids']!.int(), { maxNewTokens: 12, minNewTokens: 12 });
  const greedy = await out.tolist();
  const greedyRef = await ref['greedy.sequences']!.int().tolist();

  // The same folder dropped as files (drag-and-drop gives File objects).
  const files = new Map<string, File>();
  for (const name of ['config.json', 'model.safetensors']) {
    files.set(name, new File([await (await fetch(`/gpt2/${name}`)).blob()], name));
  }
  const dropped = await AutoModelForCausalLM.fromPretrained(files);
  const droppedMaxDiff = await maxAbsDiff(dropped.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits, ref['logits']!);

  // 10 AdamW steps on one row: the loss goes down.
  manualSeed(0);
  model.train();
  const opt = new AdamW(model.parameters(), { lr: 1e-2 });
  const ids = ref['input_ids']!.narrow(0, 0, 1);
  const losses: number[] = [];
  for (let step = 0; step < 10; step++) {
    const { logits: l } = model.forward({ inputIds: ids });
    const loss = crossEntropy(l.narrow(1, 0, 15).reshape([15, 512]), ids.narrow(1, 1, 15).reshape([15]));
    loss.backward();
    opt.step();
    opt.zeroGrad();
    losses.push(await loss.item());
  }

  // A LoRA adapter saved in the page comes back as bytes, and loads from them.
  addLora(dropped, { r: 4, alpha: 8, targetModules: ['c_attn'] });
  const adapter = await saveLoraAdapter(dropped);
  const fresh = await AutoModelForCausalLM.fromPretrained(files);
  const adapted = await loadLoraAdapter(fresh, adapter);

  return {
    device: getDefaultDevice(), adapter: adapterName, badStart, variant, threads, isolated: globalThis.crossOriginIsolated, logitsMaxDiff, droppedMaxDiff,
    greedy, greedyRef, losses, adapterFiles: [...adapter.keys()], adapted: adapted.length, ms: Math.round(performance.now() - started),
  };
}

(window as unknown as { runChecks: typeof runChecks }).runChecks = runChecks;
