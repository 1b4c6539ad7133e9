// CLI command `attend pipeline <task>`: Hugging Face's pipeline tasks from the command line, results printed as JSON.

import { pipeline, SUPPORTED_TASKS, type PipelineTask } from '../pipelines/pipeline.js';
import { generationOption, intOption, parseOptions, stringOption } from './args.js';
import type { CliCommand, Out } from './hf.js';

const stdout: Out = (t) => { process.stdout.write(t); };

export const pipelineCommand: CliCommand = {
  summary: 'run a Hugging Face pipeline task (text-classification, fill-mask, ...) on inputs, printing JSON',
  usage: `attend pipeline <task> --model DIR [options] INPUT [INPUT ...]

Runs pipeline(task, DIR) on each INPUT (text; an image or audio file for the vision and speech tasks) and prints the
result as JSON, with Hugging Face's field names (one input: its result; several: a list).
Tasks: ${SUPPORTED_TASKS.join(', ')}
  --top-k N            labels or fill-mask candidates to print (classification default 1, fill-mask 5)
  --max-new-tokens N   text-generation and automatic-speech-recognition: tokens to generate at most`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseOptions(args, { model: 'string', 'top-k': 'string', 'max-new-tokens': 'string', help: 'boolean' }, 'pipeline');
    if (values['help']) return out(`${this.usage}\n`);
    const [task, ...inputs] = positionals;
    if (!task || !(SUPPORTED_TASKS as readonly string[]).includes(task)) {
      throw new Error(`${task === undefined ? 'a task is required' : `unknown task '${task}'`} (supported: ${SUPPORTED_TASKS.join(', ')})\n\n${this.usage}`);
    }
    const dir = stringOption(values, 'model');
    if (!dir) throw new Error(`--model DIR is required\n\n${this.usage}`);
    if (inputs.length === 0) throw new Error(`expected at least one input\n\n${this.usage}`);
    const topK = intOption(values, 'top-k', 1);
    const maxNewTokens = generationOption(values, 'max-new-tokens', 'maxNewTokens');
    const input = inputs.length === 1 ? inputs[0]! : inputs;
    const t = task as PipelineTask;
    let result: unknown;
    if (t === 'text-classification') result = await (await pipeline(t, dir))(input, topK === undefined ? {} : { topK });
    else if (t === 'fill-mask') result = await (await pipeline(t, dir))(input, topK === undefined ? {} : { topK });
    else if (t === 'image-classification') result = await (await pipeline(t, dir))(input, topK === undefined ? {} : { topK });
    else if (t === 'text-generation') result = await (await pipeline(t, dir))(input, maxNewTokens === undefined ? {} : { maxNewTokens });
    else if (t === 'automatic-speech-recognition') result = await (await pipeline(t, dir))(input, maxNewTokens === undefined ? {} : { maxNewTokens });
    else result = await (await pipeline(t, dir))(input);
    out(`${JSON.stringify(result, null, 2)}\n`);
  },
};
