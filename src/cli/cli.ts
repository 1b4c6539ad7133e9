// The `attend` command line as a function: the commands, their dispatch and the top-level help (main.ts runs it).

import { ready } from '../index.js';
import { intOption, parseOptions, stringOption } from './args.js';
import { pipelineCommand } from './pipeline.js';
import { runDemo } from './demo.js';
import { classifyCommand, fillMaskCommand, generateCommand, tokenizeCommand, type CliCommand, type Out } from './hf.js';
import { trainCommand } from './train.js';
import { classifyImageCommand } from './vision.js';
import { transcribeCommand } from './speech.js';
import { chatCommand, sftCommand } from './finetune.js';
import { dpoCommand, grpoCommand, ppoCommand, rewardCommand } from './align.js';
import { quantizeCommand } from './quant.js';
import { exportOnnxCommand } from './onnx.js';

export const COMMANDS: Record<string, CliCommand> = {
  demo: {
    summary: 'train a small character-level GPT on the Brown corpus, then sample from it',
    usage: `attend demo [--steps N] [--device cpu|wasm] [--seed N]

Trains a 2-layer GPT-2-style model on the plain text of the Brown corpus (installed with the package),
prints the training and validation loss as it goes, and writes a few generated sentences.
  --steps N     training steps (default 1000, about a minute on 2 cores)
  --device D    backend (default: the fastest registered)
  --seed N      random seed (default 0)`,
    async run(args, out: Out = (t) => { process.stdout.write(t); }) {
      const { values } = parseOptions(args, { steps: 'string', device: 'string', seed: 'string', help: 'boolean' }, 'demo', false);
      if (values['help']) return out(`${this.usage}\n`);
      await runDemo({ steps: intOption(values, 'steps', 1) ?? 1000, device: stringOption(values, 'device'), seed: intOption(values, 'seed') ?? 0 });
    },
  },
  generate: generateCommand,
  'fill-mask': fillMaskCommand,
  classify: classifyCommand,
  'classify-image': classifyImageCommand,
  pipeline: pipelineCommand,
  transcribe: transcribeCommand,
  tokenize: tokenizeCommand,
  train: trainCommand,
  sft: sftCommand,
  chat: chatCommand,
  dpo: dpoCommand,
  grpo: grpoCommand,
  reward: rewardCommand,
  ppo: ppoCommand,
  quantize: quantizeCommand,
  'export-onnx': exportOnnxCommand,
};

export function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return `attend: deep learning with transformers in TypeScript

Usage: attend <command> [options]   (attend <command> --help for details)

Commands:
${Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`).join('\n')}`;
}

/** Runs one command line (without the program name); returns the exit status. Errors propagate to the caller. */
export async function runCli(argv: readonly string[], out: Out = (t) => { process.stdout.write(t); }, err: Out = (t) => { process.stderr.write(t); }): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out(`${help()}\n`);
    return 0;
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd) {
    err(`attend: unknown command '${name}'\n\n${help()}\n`);
    return 2;
  }
  // The fast CPU backend becomes the default device; a command given --device webgpu starts the GPU instead.
  const d = rest.indexOf('--device');
  await ready({ device: d >= 0 && rest[d + 1] === 'webgpu' ? 'webgpu' : 'wasm' });
  await cmd.run(rest, out);
  return 0;
}
