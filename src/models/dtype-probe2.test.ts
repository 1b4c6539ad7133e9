import { test } from 'vitest';
import '../index.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification } from './auto.js';
import { generateWithScores } from '../generation/generate.js';

test('probe', async () => {
  const cases = [['llama', AutoModelForCausalLM], ['bert-mlm', AutoModelForMaskedLM], ['bert-cls', AutoModelForSequenceClassification], ['t5', AutoModelForSeq2SeqLM]] as const;
  for (const device of ['cpu', 'wasm']) for (const [name, Auto] of cases) for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    try {
      const ref = await loadRef(name, device);
      if (dtype === 'float32' && device === 'cpu') console.log(name, Object.keys(ref).filter((k) => !k.startsWith('grad') && !k.startsWith('adamw')));
      const m = await Auto.fromPretrained(hfDir(name), { device, dtype });
      const inputs: Record<string, unknown> = { inputIds: ref['input_ids']!.int(), attentionMask: ref['attention_mask']?.int() };
      if (ref['token_type_ids']) inputs['tokenTypeIds'] = ref['token_type_ids'].int();
      if (ref['decoder_input_ids']) inputs['decoderInputIds'] = ref['decoder_input_ids'].int();
      const out = m.forward(inputs as never);
      const a = await out.logits.data(), b = await ref['logits']!.data();
      let md = 0, mx = 0; for (let i = 0; i < a.length; i++) { md = Math.max(md, Math.abs(a[i]! - b[i]!)); mx = Math.max(mx, Math.abs(b[i]!)); }
      let gen = '';
      if (name === 'llama') {
        const g = await generateWithScores(m, ref['gen.input_ids']!.int(), { maxNewTokens: 12, minNewTokens: 12 });
        gen = String(JSON.stringify(await g.sequences.tolist()) === JSON.stringify(await ref['greedy.sequences']!.int().tolist()));
      }
      console.log(device, name, dtype, out.logits.dtype, 'maxDiff', md, 'maxAbs', mx, gen);
    } catch (e) { console.log(device, name, dtype, 'ERR', (e as Error).message); }
  }
}, 120000);
