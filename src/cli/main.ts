#!/usr/bin/env node
// The `attend` command line: one subcommand per job, each with --help.

import { parseArgs } from 'node:util';
import { ready } from '../index.js';
import { runDemo } from './demo.js';
import { classifyCommand, fillMaskCommand, generateCommand, tokenizeCommand, type CliCommand } from './hf.js';
import { trainCommand } from './train.js';

const COMMANDS: Record<string, CliCommand> = {
  demo: {
    summary: 'train a small character-level GPT on the Brown corpus, then sample from it',
    usage: `attend demo [--steps N] [--device cpu|wasm] [--seed N]

Trains a 2-layer GPT-2-style model on the plain text of the Brown corpus (installed with the package),
prints the training and validation loss as it goes, and writes a few generated sentences.
  --steps N     training steps (default 1000, about a minute on 2 cores)
  --device D    backend (default: the fastest registered)
  --seed N      random seed (default 0)`,
    async run(args) {
      const { values } = parseArgs({ args, options: { steps: { type: 'string' }, device: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean' } } });
      if (values.help) return console.log(this.usage);
      await runDemo({ steps: intArg('steps', values.steps, 1000), device: values.device, seed: intArg('seed', values.seed, 0) });
    },
  },
  generate: generateCommand,
  'fill-mask': fillMaskCommand,
  classify: classifyCommand,
  tokenize: tokenizeCommand,
  train: trainCommand,
};

function intArg(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return `attend: deep learning with transformers in TypeScript

Usage: attend <command> [options]   (attend <command> --help for details)

Commands:
${Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`).join('\n')}`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') return console.log(help());
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`attend: unknown command '${name}'\n\n${help()}`);
    process.exitCode = 2;
    return;
  }
  await ready(); // the fast CPU backend becomes the default device
  await cmd.run(rest);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`attend: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
