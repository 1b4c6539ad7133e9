#!/usr/bin/env node
// The `attend` command line: one subcommand per job, each with --help (the commands are in cli.ts).

import { runCli } from './cli.js';

runCli(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
  console.error(`attend: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
