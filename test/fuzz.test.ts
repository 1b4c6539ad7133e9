// Seeded fuzzing of everything a user hands us: safetensors files, config.json, tokenizer.json and CLI argument vectors.
//
// Every case must end in success or in an error of OURS: a plain `Error` (the class attend throws everywhere), not a
// TypeError / RangeError / SyntaxError from inside the code, not a Node system error (those carry a `code`), with a
// non-empty message that is not an engine message (`Cannot read properties of undefined`, ...), and that names the
// file (or option) at fault where the case has one. A case may not hang (each is raced against a timeout).

import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../src/index.js';
import { runCli } from '../src/cli/cli.js';
import { generate, type GenerateOptions } from '../src/generation/generate.js';
import { loadSafetensors, parseSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification } from '../src/models/auto.js';
import type { PreTrainedModel } from '../src/models/base.js';
import { tensor } from '../src/tensor/create.js';
import { Generator } from '../src/tensor/random.js';
import { Tensor } from '../src/tensor/tensor.js';
import { hfDir } from '../src/test-util/hf-fixtures.js';
import { AutoTokenizer, Tokenizer } from '../src/tokenizers/tokenizer.js';
import { trainByteLevelBpe } from '../src/tokenizers/train-bpe.js';
import { trainWordPiece } from '../src/tokenizers/train-wordpiece.js';

/** Seeded choices on the project's Philox generator (the same sequence on every machine). */
class Rng {
  private readonly g: Generator;
  private buf = new Float64Array(0);
  private at = 0;
  constructor(seed: number) {
    this.g = new Generator(seed);
  }
  next(): number {
    if (this.at >= this.buf.length) {
      this.buf = this.g.uniform(4096);
      this.at = 0;
    }
    return this.buf[this.at++]!;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// (JSON.parse's own "Unexpected token" is fine inside our message: it locates a syntax error.)
const ENGINE_MESSAGE = /Cannot read properties|Cannot set properties|Cannot use 'in' operator|is not a function|is not iterable|is not defined|Maximum call stack|Invalid (typed )?array length|Array buffer allocation failed|Cannot convert/;

/** Why an error is not ours, or null when it is (`names`: a string the message must contain). */
function notOurs(e: unknown, names?: string): string | null {
  if (!(e instanceof Error)) return `threw a non-Error: ${String(e)}`;
  if (Object.getPrototypeOf(e) !== Error.prototype) return `${e.constructor.name}: ${e.message}`;
  if ('code' in e) return `system error ${String((e as { code: unknown }).code)}: ${e.message}`;
  if (e.message.trim() === '') return 'an empty message';
  if (ENGINE_MESSAGE.test(e.message)) return `an engine message: ${e.message}`;
  if (names !== undefined && !e.message.includes(names)) return `does not name ${names}: ${e.message}`;
  return null;
}

interface Failure {
  kind: string;
  input: string;
  problem: string;
}

/** Runs one case; a success or an error of ours passes; anything else (or a hang past `ms`) is recorded. */
async function attempt(failures: Failure[], kind: string, input: string, names: string | undefined, fn: () => unknown, ms = 10_000): Promise<'ok' | 'error'> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`HANG after ${ms} ms`)), ms); });
  try {
    await Promise.race([Promise.resolve().then(fn), hang]);
    return 'ok';
  } catch (e) {
    const problem = e instanceof Error && e.message.startsWith('HANG') ? e.message : notOurs(e, names);
    if (problem !== null) failures.push({ kind, input: input.slice(0, 300), problem: problem.slice(0, 300) });
    return 'error';
  } finally {
    clearTimeout(timer);
  }
}

function report(failures: Failure[]): string {
  return failures.slice(0, 15).map((f) => `[${f.kind}] ${f.problem}\n    input: ${f.input}`).join('\n');
}

// ---- safetensors ----

interface Entry { dtype: unknown; shape: unknown; data_offsets: unknown }
const BASE_TENSORS: [string, string, number[], number][] = [
  ['w', 'F32', [2, 3], 4], ['ids', 'I32', [4], 4], ['bytes', 'U8', [3], 1], ['mask', 'BOOL', [2], 1],
  ['d', 'F64', [1], 8], ['big', 'I64', [2], 8], ['half', 'F16', [2], 2], ['bf', 'BF16', [1], 2], ['empty', 'F32', [0, 5], 4],
];

function baseHeader(): { header: Record<string, unknown>; dataLength: number } {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'fuzz' } };
  let at = 0;
  for (const [name, dtype, shape, bytes] of BASE_TENSORS) {
    const n = shape.reduce((a, b) => a * b, 1) * bytes;
    header[name] = { dtype, shape, data_offsets: [at, at + n] } satisfies Entry;
    at += n;
  }
  return { header, dataLength: at };
}

const WEIRD_VALUES: unknown[] = [null, -1, 0, 1, 2.5, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 1e300, -1e300, '', 'F32', 'x', true, [], {}, [1], [1, 2], [[1]], ['a'], { a: 1 }];
const DTYPES: unknown[] = ['F32', 'F64', 'I64', 'I32', 'U8', 'BOOL', 'F16', 'BF16', 'I16', 'U16', 'U32', 'U64', 'I8', 'F8_E4M3', 'F4', 'F6_E2M3', 'X', 'f32', '', 3, null];
const SHAPES: unknown[] = [[], [0], [1], [-1], [1.5], [2 ** 53], [1e300], [2 ** 31, 2 ** 31], [2 ** 26, 2 ** 26, 2 ** 26], 'abc', [[1]], ['1'], null, [1, 2, 3, 4, 5, 6, 7, 8, 9], [6], [3, 2]];

function mutateHeaderObject(rng: Rng, header: Record<string, unknown>, dataLength: number): void {
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const entry = (): Record<string, unknown> => {
    const k = rng.pick(names);
    const e = header[k];
    if (e !== null && typeof e === 'object' && !Array.isArray(e)) return e as Record<string, unknown>;
    return (header[k] = {}) as Record<string, unknown>; // an earlier mutation replaced it with a non-object
  };
  switch (rng.int(10)) {
    case 0: entry()['dtype'] = rng.pick(DTYPES); break;
    case 1: entry()['shape'] = rng.pick(SHAPES); break;
    case 2: { // offsets: off by one, swapped, huge, negative, overlapping another's, wrong arity or type
      const e = entry();
      const [b, end] = Array.isArray(e['data_offsets']) ? e['data_offsets'] as [number, number] : [0, 4];
      e['data_offsets'] = rng.pick([[b, end + 1], [b - 1, end], [end, b], [b, 2 ** 60], [-4, end], (header[rng.pick(names)] as Entry).data_offsets, [b], [b, end, 0], 'x', [String(b), end], [0, dataLength], [b + 0.5, end]]);
      break;
    }
    case 3: delete entry()[rng.pick(['dtype', 'shape', 'data_offsets'])]; break;
    case 4: delete header[rng.pick(names)]; break;
    case 5: header[rng.pick(names)] = rng.pick(WEIRD_VALUES); break;
    case 6: header['__metadata__'] = rng.pick([null, 1, 'x', [], { a: 1 }, { a: null }, { a: ['b'] }, {}]); break;
    case 7: header[rng.pick(['extra', '', '\u00e9\u{1F600}', 'w.weight'])] = { dtype: 'F32', shape: [1], data_offsets: [dataLength, dataLength + 4] }; break;
    case 8: entry()[rng.pick(['dtype', 'shape', 'data_offsets', 'extra'])] = rng.pick(WEIRD_VALUES); break;
    default: entry()['shape'] = [...((entry()['shape'] as number[] | undefined) ?? []), rng.pick([0, 1, 2, -1])];
  }
}

function frame(json: Uint8Array, data: Uint8Array, length: bigint): Uint8Array {
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** One mutated safetensors file: object-level, text-level or framing mutations (1 to 3 of them). */
function mutatedSafetensors(rng: Rng): Uint8Array {
  const { header, dataLength } = baseHeader();
  const rounds = 1 + rng.int(3);
  for (let r = 0; r < rounds; r++) if (rng.chance(0.6)) mutateHeaderObject(rng, header, dataLength);
  let text = JSON.stringify(header);
  if (rng.chance(0.15)) { // a duplicate key, which JSON.parse would silently resolve
    const k = rng.pick(Object.keys(header));
    text = `{${JSON.stringify(k)}:${JSON.stringify(header[k])},${text.slice(1)}`;
  }
  let json = new TextEncoder().encode(text);
  if (rng.chance(0.25)) { // bytes flipped, inserted or removed in the JSON
    json = Uint8Array.from(json);
    for (let i = 0, n = 1 + rng.int(4); i < n; i++) {
      const at = rng.int(json.length);
      if (rng.chance(0.7)) json[at] = rng.int(256);
      else json = rng.chance(0.5) ? Uint8Array.from([...json.subarray(0, at), ...json.subarray(at + 1)]) : Uint8Array.from([...json.subarray(0, at), rng.pick([0x22, 0x7b, 0x5d, 0x2c, 0xff, 0x5c]), ...json.subarray(at)]);
    }
  }
  let dataLen = dataLength;
  if (rng.chance(0.1)) dataLen += rng.pick([-1, 1, 8, -dataLength]);
  const data = new Uint8Array(Math.max(0, dataLen));
  if (rng.chance(0.2)) for (let i = 0; i < data.length; i++) data[i] = rng.int(256); // random I64 values rarely fit int32
  let length = BigInt(json.length);
  if (rng.chance(0.1)) length = rng.pick([0n, length - 1n, length + 1n, length + 1000n, 2n ** 64n - 1n, 2n ** 53n + 1n, 2n ** 63n]);
  let bytes = frame(json, data, length);
  if (rng.chance(0.1)) bytes = bytes.slice(0, rng.int(bytes.length)); // truncated file
  return bytes;
}

// ---- config.json ----

const ARCHS = [
  { fixture: 'gpt2', load: AutoModelForCausalLM },
  { fixture: 'llama', load: AutoModelForCausalLM },
  { fixture: 't5', load: AutoModelForSeq2SeqLM },
  { fixture: 'bert-mlm', load: AutoModelForMaskedLM },
  { fixture: 'bert-cls', load: AutoModelForSequenceClassification },
] as const;
const CONFIG_VALUES: unknown[] = [null, -1, 0, 1, 2, 3, 4, 7, 64, 1e12, 2 ** 53, 1e300, -1e300, 0.5, 1e-30, 'x', '12', 'gelu', 'gated-gelu', 'llama3', true, false, [], {}, [1, 2], { 0: 'a' }, { rope_type: 'llama3', factor: 8 }];
const EXTRA_KEYS = ['model_type', 'vocab_size', 'n_layer', 'num_hidden_layers', 'num_layers', 'n_head', 'num_key_value_heads', 'head_dim', 'num_labels', 'id2label', 'rope_scaling', 'rope_parameters', 'num_decoder_layers', 'feed_forward_proj', 'n_inner', 'position_embedding_type', 'problem_type', 'eos_token_id'];

function mutatedConfig(rng: Rng, base: Record<string, unknown>): string {
  const cfg: Record<string, unknown> = structuredClone(base);
  for (let r = 0, n = 1 + rng.int(3); r < n; r++) {
    const key = rng.chance(0.75) ? rng.pick(Object.keys(cfg)) : rng.pick(EXTRA_KEYS);
    if (rng.chance(0.15)) delete cfg[key];
    else cfg[key] = rng.pick(CONFIG_VALUES);
  }
  const text = JSON.stringify(cfg);
  if (rng.chance(0.05)) return text.slice(0, rng.int(text.length)); // truncated JSON
  if (rng.chance(0.03)) return rng.pick(['[]', 'null', '7', '"config"', '']);
  return text;
}

// ---- tokenizer.json ----

const TOKENIZER_FILES = ['bytelevel-bpe', 'wordpiece', 'unigram', 'bpe-bytefallback'];
const TOKENIZER_VALUES: unknown[] = [null, -1, 0, 1, 3.5, 1e12, '', 'oops', '[UNK]', true, [], {}, [1, 'a'], [['a', 'b']], { a: 'b' }, { type: 'BPE' }, { type: 'Nope' }, [{ id: 0, content: 'x' }], [{ id: -1 }]];

/** Every path into the JSON down to `depth` levels (arrays: a few sampled indices), to pick a node to mutate. */
function paths(v: unknown, depth: number, rng: Rng, prefix: (string | number)[] = []): (string | number)[][] {
  if (depth === 0 || v === null || typeof v !== 'object') return [prefix];
  const keys: (string | number)[] = Array.isArray(v) ? (v.length ? [0, v.length - 1, rng.int(v.length)] : []) : Object.keys(v);
  return [prefix, ...keys.flatMap((k) => paths((v as Record<string | number, unknown>)[k], depth - 1, rng, [...prefix, k]))];
}

function mutatedTokenizer(rng: Rng, base: unknown): unknown {
  const json = structuredClone(base);
  for (let r = 0, n = 1 + rng.int(3); r < n; r++) {
    const all = paths(json, 4, rng).filter((p) => p.length > 0);
    const p = rng.pick(all);
    const parent = p.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], json) as Record<string | number, unknown>;
    const key = p[p.length - 1]!;
    if (rng.chance(0.2) && !Array.isArray(parent)) delete parent[key];
    else parent[key] = rng.pick(TOKENIZER_VALUES);
  }
  return json;
}

// ---- the test ----

const SEED = 20261205;
const failures: Failure[] = [];
let work = '';
const counts: Record<string, { ok: number; error: number }> = {};
const count = (kind: string, r: 'ok' | 'error'): void => { (counts[kind] ??= { ok: 0, error: 0 })[r]++; };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'attend-fuzz-'));
});
afterAll(async () => {
  console.log(`fuzz (seed ${SEED}): ${Object.entries(counts).map(([k, c]) => `${k} ${c.ok + c.error} (${c.ok} loaded, ${c.error} refused)`).join('; ')}`);
  await rm(work, { recursive: true, force: true });
});

describe('fuzz: every bad input ends in an error of ours', () => {
  test('safetensors: 2,850 mutated files in memory and 150 from disk', async () => {
    // The unmutated file loads, so that the mutations start from something valid.
    const { header, dataLength } = baseHeader();
    const base = parseSafetensors(frame(new TextEncoder().encode(JSON.stringify(header)), new Uint8Array(dataLength), BigInt(JSON.stringify(header).length)), 'base');
    expect(Object.keys(base).sort()).toEqual(BASE_TENSORS.map(([n]) => n).sort());
    const rng = new Rng(SEED);
    const local: Failure[] = [];
    for (let i = 0; i < 3000; i++) {
      const bytes = mutatedSafetensors(rng);
      const name = `fuzz-${i}.safetensors`;
      const input = `${name}: ${new TextDecoder().decode(bytes.subarray(8, 400))}`;
      const load = async (): Promise<void> => {
        const tensors = i < 2850 ? parseSafetensors(bytes, name) : await loadSafetensors(join(work, name));
        for (const t of Object.values(tensors)) {
          if (!(t instanceof Tensor)) throw new TypeError('not a tensor');
          t.dispose();
        }
      };
      if (i >= 2850) await writeFile(join(work, name), bytes);
      count('safetensors', await attempt(local, 'safetensors', input, name, load));
    }
    failures.push(...local);
    expect(local, report(local)).toEqual([]);
  });

  test('config.json: 200 mutated configs through the model loaders (a forward pass when one loads)', async () => {
    const rng = new Rng(SEED + 1);
    const local: Failure[] = [];
    const dirs = await Promise.all(ARCHS.map(async ({ fixture }) => {
      const dir = await mkdtemp(join(work, `${fixture}-`));
      await copyFile(join(hfDir(fixture), 'model.safetensors'), join(dir, 'model.safetensors'));
      return dir;
    }));
    const bases = ARCHS.map(({ fixture }) => JSON.parse(readFileSync(join(hfDir(fixture), 'config.json'), 'utf8')) as Record<string, unknown>);
    for (let i = 0; i < 200; i++) {
      const a = i % ARCHS.length;
      const dir = dirs[a]!;
      const text = mutatedConfig(rng, bases[a]!);
      await writeFile(join(dir, 'config.json'), text);
      const genConfig = rng.chance(0.1) ? rng.pick(['{"eos_token_id": "x"}', '[]', 'null', '{"pad_token_id": -1.5}', '{']) : null;
      if (genConfig === null) await rm(join(dir, 'generation_config.json'), { force: true });
      else await writeFile(join(dir, 'generation_config.json'), genConfig);
      count('config', await attempt(local, 'config', `${ARCHS[a]!.fixture} ${text} ${genConfig ?? ''}`, dir, async () => {
        const model: PreTrainedModel = await ARCHS[a]!.load.fromPretrained(dir);
        const ids = tensor([[1, 2, 3]], { dtype: 'int32' });
        const out = model.forward(model.isEncoderDecoder ? { inputIds: ids, decoderInputIds: ids } : { inputIds: ids });
        out.logits.dispose();
      }));
    }
    failures.push(...local);
    expect(local, report(local)).toEqual([]);
  });

  test('sharded checkpoints: 100 mutated model.safetensors.index.json files', async () => {
    const rng = new Rng(SEED + 6);
    const local: Failure[] = [];
    const dir = await mkdtemp(join(work, 'shards-'));
    await copyFile(join(hfDir('gpt2'), 'config.json'), join(dir, 'config.json'));
    const all = await loadSafetensors(join(hfDir('gpt2'), 'model.safetensors'));
    const names = Object.keys(all).sort();
    const half = Math.floor(names.length / 2);
    const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    await saveSafetensors(join(dir, shards[0]!), Object.fromEntries(names.slice(0, half).map((k) => [k, all[k]!])));
    await saveSafetensors(join(dir, shards[1]!), Object.fromEntries(names.slice(half).map((k) => [k, all[k]!])));
    const map = Object.fromEntries(names.map((k, i) => [k, shards[i < half ? 0 : 1]!]));
    const OTHER: unknown[] = [shards[0], shards[1], 'missing.safetensors', '../model.safetensors', '', 7, null, [], {}, 'config.json'];
    for (let i = 0; i < 100; i++) {
      const m: Record<string, unknown> = { ...map };
      for (let r = 0, n = 1 + rng.int(3); r < n; r++) {
        const k = rng.chance(0.9) ? rng.pick(names) : 'extra.weight';
        if (rng.chance(0.3)) delete m[k];
        else m[k] = rng.pick(OTHER);
      }
      const index = rng.chance(0.1) ? rng.pick(['{', '[]', '{"weight_map": 3}', '{"metadata": {}}', 'null']) : JSON.stringify({ metadata: { total_size: 1 }, weight_map: m });
      await writeFile(join(dir, 'model.safetensors.index.json'), index);
      count('index', await attempt(local, 'index', index.slice(0, 300), dir, async () => {
        (await AutoModelForCausalLM.fromPretrained(dir)).forward({ inputIds: tensor([[1, 2]], { dtype: 'int32' }) }).logits.dispose();
      }));
    }
    for (const t of Object.values(all)) t.dispose();
    failures.push(...local);
    expect(local, report(local)).toEqual([]);
  });

  test('tokenizer.json: 300 mutated tokenizers (260 in memory, 40 files with broken JSON) load and encode', async () => {
    const rng = new Rng(SEED + 2);
    const local: Failure[] = [];
    const bases = TOKENIZER_FILES.map((f) => JSON.parse(readFileSync(new URL(`./data/tokenizers/${f}.json`, import.meta.url), 'utf8')) as unknown);
    const text = 'Hello world, this is fuzz 123 \u00fc \u{1F600} [MASK] <unk>';
    for (let i = 0; i < 300; i++) {
      const base = bases[i % bases.length]!;
      const json = mutatedTokenizer(rng, base);
      const use = (tok: Tokenizer): void => {
        const enc = tok.encode(text);
        // A tokenizer that loads must give token ids: anything else is a silently wrong result.
        if (!enc.ids.every((id) => Number.isInteger(id))) throw new TypeError(`encode returned non-integer ids: ${JSON.stringify(enc.ids).slice(0, 80)}`);
        tok.decode(enc.ids);
      };
      let tok: Tokenizer | null = null;
      const input = JSON.stringify(json).slice(0, 300);
      if (i < 260) {
        // fromJSON names its source (the third argument) in its errors.
        count('tokenizer', await attempt(local, 'tokenizer', input, `fuzz-${i}.json`, () => { tok = Tokenizer.fromJSON(json, {}, `fuzz-${i}.json`); }));
      } else {
        const path = join(work, `tokenizer-${i}.json`);
        const raw = JSON.stringify(json);
        await writeFile(path, rng.chance(0.5) ? raw.slice(0, rng.int(raw.length)) : raw);
        count('tokenizer', await attempt(local, 'tokenizer', `${path}: ${input}`, path, async () => { tok = await Tokenizer.fromFile(path); }));
      }
      if (tok) await attempt(local, 'tokenizer', `encode / decode with ${input}`, undefined, () => use(tok!));
    }
    failures.push(...local);
    expect(local, report(local)).toEqual([]);
  });

  test('AutoTokenizer: 60 folders with a mutated tokenizer_config.json / special_tokens_map.json', async () => {
    const rng = new Rng(SEED + 4);
    const local: Failure[] = [];
    const dir = await mkdtemp(join(work, 'autotok-'));
    await copyFile(new URL('./data/tokenizers/wordpiece.json', import.meta.url), join(dir, 'tokenizer.json'));
    const KEYS = ['model_max_length', 'pad_token', 'mask_token', 'cls_token', 'sep_token', 'unk_token', 'bos_token', 'eos_token', 'padding_side', 'truncation_side', 'do_lower_case', 'clean_up_tokenization_spaces', 'added_tokens_decoder', 'additional_special_tokens'];
    const VALUES: unknown[] = [null, -1, 0, 3, 1e30, '', '[PAD]', '[MASK]', 'nope', 'left', 'right', 'middle', true, [], {}, ['[X]'], [1], { content: '[PAD]' }, { 0: { content: 'x' } }, { a: 1 }];
    for (let i = 0; i < 60; i++) {
      const file = rng.pick(['tokenizer_config.json', 'special_tokens_map.json']);
      const cfg = Object.fromEntries(Array.from({ length: 1 + rng.int(3) }, () => [rng.pick(KEYS), rng.pick(VALUES)]));
      const text = rng.chance(0.1) ? rng.pick(['[', 'null', '[]', '"x"']) : JSON.stringify(cfg);
      await rm(join(dir, 'tokenizer_config.json'), { force: true });
      await rm(join(dir, 'special_tokens_map.json'), { force: true });
      await writeFile(join(dir, file), text);
      let tok: Tokenizer | null = null;
      const input = `${file}: ${text}`;
      count('autotokenizer', await attempt(local, 'autotokenizer', input, file, async () => { tok = await AutoTokenizer.fromPretrained(dir); }));
      if (tok) {
        await attempt(local, 'autotokenizer', `use: ${input}`, undefined, () => {
          const t = tok!;
          t.encodeBatch(['the cat sat', 'a dog'], { padding: true, truncation: true, returnTensors: false });
          t.decode(t.encode('the cat').ids, { skipSpecialTokens: true });
        });
      }
    }
    failures.push(...local);
    expect(local, report(local)).toEqual([]);
  });

  test('generate(): 150 random option objects on GPT-2 and T5', async () => {
    const rng = new Rng(SEED + 5);
    const local: Failure[] = [];
    const gpt2 = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const t5 = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'));
    const VALUES: Record<string, unknown[]> = {
      maxNewTokens: [1, 2, 3, 0, -5, 2.5, '3', null, 1e9], minNewTokens: [0, 1, 5, -1, 0.5], doSample: [true, false, 1, 'yes'],
      temperature: [0.7, 1, 2, 0, -1, Number.NaN, Infinity], topK: [0, 1, 5, -1, 2.5, 1e9], topP: [0.5, 0.9, 1, 0, 2, -0.1],
      minP: [0, 0.05, 1, 5, -1], repetitionPenalty: [1, 1.3, 0.8, 0, -2], numBeams: [1, 2, 3, 0, 1.5], lengthPenalty: [1, 0, -1, 2, Infinity],
      earlyStopping: [true, false, 'never', 'no'], eosTokenId: [2, [2, 3], -1, [0.5], 'x', 1e6], padTokenId: [0, 1, -1, 'x'],
      seed: [0, 7, -1, 1.5], decoderStartTokenId: [0, 5, -1], attentionMask: [null, [[1, 1, 1]], 'x', tensor([[1, 1, 1]], { dtype: 'int32' })],
    };
    const PROMPTS = [[[5, 17, 300]], [[1], [2]], [[3, 4, 5, 6]]];
    for (let i = 0; i < 150; i++) {
      const opts: Record<string, unknown> = { maxNewTokens: 2 };
      for (let k = 0, n = rng.int(5); k < n; k++) {
        const key = rng.pick(Object.keys(VALUES));
        opts[key] = rng.pick(VALUES[key]!);
      }
      if (typeof opts['maxNewTokens'] === 'number' && opts['maxNewTokens'] > 4) opts['maxNewTokens'] = rng.chance(0.5) ? 4 : opts['maxNewTokens'];
      const model = rng.chance(0.7) ? gpt2 : t5;
      const prompt = rng.chance(0.05) ? tensor(new Int32Array(0), { shape: [1, 0] }) : tensor(rng.pick(PROMPTS), { dtype: 'int32' });
      count('generate', await attempt(local, 'generate', `${model === gpt2 ? 'gpt2' : 't5'} ${prompt.shape.join('x')} ${JSON.stringify(opts)}`, undefined, async () => {
        (await generate(model, prompt, opts as GenerateOptions)).dispose();
      }));
      prompt.dispose();
    }
    failures.push(...local);
    expect(local, report(local)).toEqual([]);
  });

  test('CLI: 250 argument vectors run in-process', async () => {
    const rng = new Rng(SEED + 3);
    const local: Failure[] = [];
    const TEXT = ['the cat sat on the mat', 'the dog sat on the log', 'a cat and a dog', 'on the mat sat the cat'];
    const gpt2 = await mkdtemp(join(work, 'cli-gpt2-'));
    for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('gpt2'), f), join(gpt2, f));
    await writeFile(join(gpt2, 'tokenizer.json'), JSON.stringify(trainByteLevelBpe(TEXT, { vocabSize: 300, minFrequency: 1 })));
    const bert = await mkdtemp(join(work, 'cli-bert-'));
    for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('bert-cls'), f), join(bert, f));
    await writeFile(join(bert, 'tokenizer.json'), JSON.stringify(trainWordPiece(TEXT, { vocabSize: 120, minFrequency: 1 })));
    // Each command's own options with good and bad values (mostly good, so that runs reach the later checks and the
    // work), in both --k v and --k=v forms, plus stray tokens from JUNK.
    const OPTIONS: Record<string, Record<string, [string[], string[]] | 'flag'>> = {
      generate: {
        'max-new-tokens': [['1', '2', '3'], ['0', '-5', 'x', '1.5', '', '1e999']], temperature: [['0.7', '1.5'], ['0', '-1', 'NaN', 'Infinity']],
        'top-k': [['0', '3'], ['-1', '2.5']], 'top-p': [['0.9', '1'], ['0', '2', '-0']], 'min-p': [['0', '0.1'], ['5', '-0.1']],
        seed: [['0', '7'], ['-1', '1e999', '0x10']], 'num-beams': [['1', '2'], ['0', '-2']], 'repetition-penalty': [['1.2', '1'], ['0', '-1']], sample: 'flag',
      },
      'fill-mask': { 'top-k': [['1', '3'], ['0', '-2', 'x']] },
      classify: {},
      tokenize: { gpt2: 'flag', tokenizer: [[join(gpt2, 'tokenizer.json')], [gpt2, join(work, 'missing.json'), '']] },
      demo: { steps: [['0'], ['-3', 'x']], seed: [['1'], ['-1']], device: [['cpu'], ['tpu']] },
      train: { steps: [['0'], ['x']], out: [[join(work, 'runs')], ['']], smoke: 'flag', device: [['cpu'], ['nope']] },
    };
    const JUNK = ['--unknown', '-x', '=', '--=', '--', '', ' ', '-5', 'NaN', '--help=1', '--sample=maybe', '--model', 'x'.repeat(300)];
    const TEXTS = ['the cat', 'the [MASK] sat', 'a', '', ' ', '\u{1F600}'];
    for (let i = 0; i < 250; i++) {
      const command = rng.pick(['generate', 'generate', 'generate', 'fill-mask', 'classify', 'tokenize', 'tokenize', 'demo', 'train', 'nope', '']);
      const own = OPTIONS[command] ?? {};
      const args: string[] = [];
      if (['generate', 'fill-mask', 'classify', 'tokenize'].includes(command) && rng.chance(0.85)) {
        const dir = command === 'generate' ? gpt2 : bert;
        args.push(...(rng.chance(0.5) ? [`--model=${dir}`] : ['--model', dir]));
      }
      for (let k = 0, n = rng.int(4); k < n && Object.keys(own).length; k++) {
        const name = rng.pick(Object.keys(own));
        const spec = own[name]!;
        if (spec === 'flag') { args.push(`--${name}`); continue; }
        const v = rng.chance(0.75) ? rng.pick(spec[0]) : rng.pick(spec[1]);
        args.push(...(rng.chance(0.5) ? [`--${name}=${v}`] : [`--${name}`, v]));
      }
      if (rng.chance(0.15)) args.splice(rng.int(args.length + 1), 0, rng.pick(JUNK));
      if (rng.chance(0.9)) args.push(rng.pick(TEXTS));
      // demo and train get --steps=0 first (their fuzzed --steps values are all bad too), so that no training starts
      // whatever follows, even after a '--'; generate runs stay short.
      const argv = command === 'demo' ? [command, '--steps=0', ...args]
        : command === 'train' ? [command, rng.pick(['gpt-brown', 'g2p', 'nope', '--steps=1', '']), '--steps=0', ...args] : [command, ...args];
      if (command === 'generate' && !args.some((a) => a.startsWith('--max-new-tokens'))) argv.push('--max-new-tokens=2');
      const r = await attempt(local, 'cli', JSON.stringify(argv), undefined, () => runCli(argv, () => {}, () => {}), 20_000);
      if (process.env['FUZZ_DEBUG']) console.log(r, JSON.stringify(argv));
      count('cli', r);
    }
    failures.push(...local);
    expect(local, report(local)).toEqual([]);
  });
});
