// attend transcribe: real round trips (espeak-ng speech -> WAV -> resample -> log-mel -> Whisper -> streamed text;
// -> normalised waveform -> wav2vec2 -> CTC text), the printed output against direct calls, and bad input.

import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { generate } from '../generation/generate.js';
import { AutoModelForCTC, AutoModelForSpeechSeq2Seq } from '../models/auto.js';
import { loadAudio } from '../processors/audio.js';
import { Wav2Vec2FeatureExtractor } from '../processors/wav2vec2.js';
import { WhisperFeatureExtractor } from '../processors/whisper.js';
import { Wav2Vec2CTCTokenizer } from '../tokenizers/ctc.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { trainByteLevelBpe } from '../tokenizers/train-bpe.js';
import { runCli } from './cli.js';

const SPECIALS = ['<pad>', '<|startoftranscript|>', '<|endoftext|>', '<|en|>', '<|de|>', '<|transcribe|>', '<|translate|>', '<|notimestamps|>'];

/** A byte-level BPE with exactly the fixture's 512 ids: the specials first (ids 0-7, as the generation config says). */
function tinyTokenizer(): object {
  const syl = ['ka', 'to', 'ri', 'mu', 'se', 'la', 'no', 'pi', 'de', 'vo', 'zu', 'ghe'];
  const texts: string[] = ['four two seven', 'one nine three five'];
  for (const a of syl) for (const b of syl) for (const c of syl) texts.push(` ${a}${b}${c} ${c}${a}`);
  return trainByteLevelBpe(texts, { vocabSize: 512, minFrequency: 1, specialTokens: SPECIALS });
}

/**
 * The Whisper fixture (random weights, 100 mel frames) as a transcription folder: a tokenizer, a Whisper-style
 * generation config, and a feature extractor whose chunk is 3 s at hop 480, i.e. the 100 frames the model takes.
 */
async function whisperFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-transcribe-'));
  for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('whisper'), f), join(dir, f));
  const tokJson = tinyTokenizer();
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokJson));
  // Tokens that are not whole characters (lone UTF-8 bytes) are suppressed too, so that each token adds text to stream.
  const tok = Tokenizer.fromJSON(tokJson);
  const partial = Array.from({ length: 512 - 8 }, (_, i) => i + 8).filter((id) => tok.decode([id]).includes('\uFFFD'));
  await writeFile(join(dir, 'generation_config.json'), JSON.stringify({
    decoder_start_token_id: 1, eos_token_id: 2, pad_token_id: 0, is_multilingual: true, forced_decoder_ids: [[1, null], [2, 5]],
    lang_to_id: { '<|en|>': 3, '<|de|>': 4 }, task_to_id: { transcribe: 5, translate: 6 }, no_timestamps_token_id: 7,
    // Specials other than eos never come as text (the random weights favour <|notimestamps|>); eos not first.
    suppress_tokens: [0, 1, 3, 4, 5, 6, 7, ...partial], begin_suppress_tokens: [2],
  }));
  await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ feature_size: 80, sampling_rate: 16000, hop_length: 480, n_fft: 400, chunk_length: 3, padding_value: 0 }));
  return dir;
}

function hasEspeak(): boolean {
  try {
    execFileSync('espeak-ng', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const espeak = hasEspeak();
if (!espeak) console.warn('speech.test.ts: espeak-ng is not installed (Debian package espeak-ng): the round trip through `attend transcribe` is SKIPPED');

describe('attend transcribe', () => {
  let dir = '';
  let wav = '';
  beforeAll(async () => {
    dir = await whisperFolder();
    wav = join(dir, 'digits.wav');
    if (espeak) execFileSync('espeak-ng', ['-w', wav, 'four two seven']); // 22,050 Hz: loadAudio resamples it
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('the tokenizer written for the fixture has its 512 ids, specials first', async () => {
    const tok = await Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    expect(tok.vocabSize).toBe(512);
    expect(tok.decode([1, 3, 5, 7], { skipSpecialTokens: false })).toBe(SPECIALS[1]! + SPECIALS[3]! + SPECIALS[5]! + SPECIALS[7]!);
  });

  test.skipIf(!espeak)('espeak-ng speech through the CLI: streamed text, and ids equal a direct generate() call', async () => {
    const chunks: string[] = [];
    expect(await runCli(['transcribe', '--model', dir, '--language', 'de', '--ids', '--max-new-tokens', '12', wav], (t) => { chunks.push(t); })).toBe(0);
    const printed = chunks.join('');
    const idsLine = printed.split('\n').find((l) => l.startsWith('ids: '));
    expect(idsLine).toBeDefined();
    const ids = idsLine!.slice(5).split(' ').map(Number);
    // The reference: the same steps by hand (features from loadAudio + the extractor, then generate()).
    const fe = await WhisperFeatureExtractor.fromPretrained(dir);
    const { inputFeatures } = fe.call(await loadAudio(wav, { samplingRate: 16000 }), { samplingRate: 16000 });
    expect(inputFeatures.shape).toEqual([1, 80, 100]);
    const model = await AutoModelForSpeechSeq2Seq.fromPretrained(dir);
    const want = ((await (await generate(model, { inputFeatures }, { language: 'de', maxNewTokens: 12 })).tolist()) as number[][])[0]!;
    expect(ids).toEqual(want);
    expect(ids.slice(0, 4)).toEqual([1, 4, 5, 7]); // start, <|de|>, <|transcribe|>, <|notimestamps|>
    expect(ids[4]).not.toBe(2); // begin_suppress_tokens: no eos first
    expect(ids.slice(4).some((t) => t < 8 && t !== 2)).toBe(false); // suppress_tokens
    // The text printed is the decoded tokens (random weights: whatever they are, without the specials).
    const tok = await Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    const text = tok.decode(ids, { skipSpecialTokens: true });
    expect(printed.startsWith(`${text}\n`)).toBe(true);
    expect(text.length).toBeGreaterThan(0);
    // Streamed: one piece per token until eos (or the limit), then the newline and the ids.
    const pieces = chunks.slice(0, chunks.indexOf('\n'));
    expect(pieces.length).toBe(ids.slice(4).filter((t) => t !== 2).length);
  });

  test.skipIf(!espeak)('beam search and a detected language run through the CLI', async () => {
    let printed = '';
    expect(await runCli(['transcribe', '--model', dir, '--num-beams', '2', '--max-new-tokens', '4', '--ids', wav], (t) => { printed += t; })).toBe(0);
    const ids = printed.split('\n').find((l) => l.startsWith('ids: '))!.slice(5).split(' ').map(Number);
    expect([3, 4]).toContain(ids[1]); // a language token, detected
    expect(ids.slice(2, 4)).toEqual([5, 7]);
  });

  test('bad input is named before the model runs', async () => {
    const run = (args: string[]) => runCli(['transcribe', ...args], () => {});
    await expect(run(['--model', dir])).rejects.toThrow(/expected one audio file/);
    await expect(run([join(dir, 'x.wav')])).rejects.toThrow(/--model DIR is required/);
    await expect(run(['--model', dir, '--num-beams', '0', 'a.wav'])).rejects.toThrow(/numBeams|num-beams/);
    await expect(run(['--model', dir, '--task', 'summarize', 'a.wav'])).rejects.toThrow(/--task must be transcribe or translate/);
    await expect(run(['--model', dir, join(dir, 'missing.wav')])).rejects.toThrow(/missing.wav/);
    // 4 s of audio: longer than the folder's 3 s chunk.
    const long = join(dir, 'long.wav');
    const header = Buffer.alloc(44);
    const n = 16000 * 4;
    header.write('RIFF', 0); header.writeUInt32LE(36 + 2 * n, 4); header.write('WAVEfmt ', 8); header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20); header.writeUInt16LE(1, 22); header.writeUInt32LE(16000, 24); header.writeUInt32LE(32000, 28);
    header.writeUInt16LE(2, 32); header.writeUInt16LE(16, 34); header.write('data', 36); header.writeUInt32LE(2 * n, 40);
    await writeFile(long, Buffer.concat([header, Buffer.alloc(2 * n, 1)]));
    await expect(run(['--model', dir, long])).rejects.toThrow(/long.wav: .*4.00 s .*longer than the model accepts \(3 s/);
    await expect(run(['--model', dir, '--language', 'fr', long.replace('long', 'digits')])).rejects.toThrow(espeak ? /unsupported language 'fr'/ : /digits.wav/);
  });
});

describe('attend transcribe with a CTC model (wav2vec2)', () => {
  let dir = '';
  let wav = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'attend-transcribe-ctc-'));
    for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('wav2vec2'), f), join(dir, f));
    // The fixture's 32 ids as a character vocabulary: blank (pad) 0, unk 1, the word delimiter 2, then letters.
    const letters = 'abcdefghijklmnopqrstuvwxyz\'-.?!'.split('').slice(0, 29);
    await writeFile(join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries([['<pad>', 0], ['<unk>', 1], ['|', 2], ...letters.map((c, i) => [c, i + 3])])));
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ feature_size: 1, sampling_rate: 16000, padding_value: 0, do_normalize: true, return_attention_mask: false }));
    wav = join(dir, 'digits.wav');
    if (espeak) execFileSync('espeak-ng', ['-w', wav, 'four two seven']);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test.skipIf(!espeak)('espeak-ng speech through the CLI: the text equals the model\'s greedy CTC output', async () => {
    let printed = '';
    expect(await runCli(['transcribe', '--model', dir, '--ids', wav], (t) => { printed += t; })).toBe(0);
    const fe = await Wav2Vec2FeatureExtractor.fromPretrained(dir);
    const { inputValues } = fe.call(await loadAudio(wav, { samplingRate: 16000 }), { samplingRate: 16000 });
    const model = await AutoModelForCTC.fromPretrained(dir);
    const frames = ((await model.forward({ inputValues }).logits.argmax(-1).tolist()) as number[][])[0]!;
    expect(frames.length).toBeGreaterThan(10);
    // Collapse repeats and drop blanks by hand, independently of the tokenizer.
    const collapsed = frames.filter((t, i) => i === 0 || t !== frames[i - 1]).filter((t) => t !== 0);
    const tok = await Wav2Vec2CTCTokenizer.fromPretrained(dir);
    expect(printed).toBe(`${tok.decode(frames)}\nids: ${collapsed.join(' ')}\n`);
  });

  test('beams, language and task are refused for a CTC model', async () => {
    await expect(runCli(['transcribe', '--model', dir, '--num-beams', '2', wav], () => {})).rejects.toThrow(/CTC model .* --num-beams/);
  });
});
