// CLI command `attend pipeline <task>`: Hugging Face's pipeline tasks from the command line, results printed as JSON.

import { pipeline, resolveTask, SUPPORTED_TASKS, TASK_ALIASES, TASK_NAMES } from '../pipelines/pipeline.js';
import { AGGREGATION_STRATEGIES, type AggregationStrategy } from '../pipelines/token-classification.js';
import { generationOption, intOption, parseOptions, stringOption } from './args.js';
import type { CliCommand, Out } from './hf.js';

const stdout: Out = (t) => { process.stdout.write(t); };

/** The task names (and aliases) wrapped to the width of the help text. */
function taskLines(): string {
  const names = [...SUPPORTED_TASKS, ...Object.keys(TASK_ALIASES).map((a) => `${a} (alias)`), 'translation_XX_to_YY (T5: its task_specific_params entry)'];
  const lines: string[] = [];
  for (const n of names) {
    const last = lines[lines.length - 1];
    if (last !== undefined && last.length + n.length + 2 <= 116) lines[lines.length - 1] = `${last}, ${n}`;
    else lines.push(`  ${n}`);
  }
  return lines.join(',\n');
}

/** A comma-separated list option (--candidate-labels cat,dog), or undefined when absent. */
function listOption(values: Parameters<typeof stringOption>[0], name: string): string[] | undefined {
  const raw = stringOption(values, name);
  if (raw === undefined) return undefined;
  return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export const pipelineCommand: CliCommand = {
  summary: 'run a Hugging Face pipeline task (text-classification, ner, summarization, ...) on inputs, printing JSON',
  usage: `attend pipeline <task> --model DIR [options] INPUT [INPUT ...]

Runs pipeline(task, DIR) on each INPUT (text; an image or audio file for the vision and speech tasks) and prints the
result as JSON, with Hugging Face's field names (one input: its result; several: a list).
Tasks:
${taskLines()}
Options:
  --top-k N                    labels or fill-mask candidates to print (classification default 1, fill-mask 5)
  --max-new-tokens N           generation and speech tasks: tokens to generate at most
  --num-beams N                text2text-generation, summarization, translation, Whisper: beam search
  --aggregation-strategy S     token-classification: ${AGGREGATION_STRATEGIES.join(' | ')} (default none)
  --ignore-labels A,B          token-classification: labels left out (default O)
  --candidate-labels A,B,...   zero-shot-image-classification: the labels to score (required)
  --hypothesis-template T      zero-shot-image-classification: default "This is a photo of {}."`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseOptions(args, {
      model: 'string', 'top-k': 'string', 'max-new-tokens': 'string', 'num-beams': 'string', 'aggregation-strategy': 'string',
      'ignore-labels': 'string', 'candidate-labels': 'string', 'hypothesis-template': 'string', help: 'boolean',
    }, 'pipeline');
    if (values['help']) return out(`${this.usage}\n`);
    const [task, ...inputs] = positionals;
    if (!task) throw new Error(`a task is required (supported: ${TASK_NAMES})\n\n${this.usage}`);
    let t;
    try {
      t = resolveTask(task);
    } catch {
      throw new Error(`unknown task '${task}' (supported: ${TASK_NAMES})\n\n${this.usage}`);
    }
    const dir = stringOption(values, 'model');
    if (!dir) throw new Error(`--model DIR is required\n\n${this.usage}`);
    if (inputs.length === 0) throw new Error(`expected at least one input\n\n${this.usage}`);
    // Every option is checked before the model loads.
    const topK = intOption(values, 'top-k', 1);
    const maxNewTokens = generationOption(values, 'max-new-tokens', 'maxNewTokens');
    const numBeams = generationOption(values, 'num-beams', 'numBeams');
    const strategy = stringOption(values, 'aggregation-strategy');
    if (strategy !== undefined && !(AGGREGATION_STRATEGIES as readonly string[]).includes(strategy)) {
      throw new Error(`--aggregation-strategy must be one of ${AGGREGATION_STRATEGIES.join(', ')}, got '${strategy}'`);
    }
    const ignoreLabels = listOption(values, 'ignore-labels');
    const candidateLabels = listOption(values, 'candidate-labels');
    const hypothesisTemplate = stringOption(values, 'hypothesis-template');
    if (t === 'zero-shot-image-classification' && !candidateLabels?.length) throw new Error(`--candidate-labels A,B,... is required for ${t}\n\n${this.usage}`);
    const gen = { ...(maxNewTokens === undefined ? {} : { maxNewTokens }), ...(numBeams === undefined ? {} : { numBeams }) };
    const k = topK === undefined ? {} : { topK };
    const input = inputs.length === 1 ? inputs[0]! : inputs;
    let result: unknown;
    if (t === 'text-classification') result = await (await pipeline(t, dir))(input, k);
    else if (t === 'fill-mask') result = await (await pipeline(t, dir))(input, k);
    else if (t === 'image-classification') result = await (await pipeline(t, dir))(input, k);
    else if (t === 'text-generation') result = await (await pipeline(t, dir))(input, maxNewTokens === undefined ? {} : { maxNewTokens });
    else if (t === 'automatic-speech-recognition') result = await (await pipeline(t, dir))(input, gen);
    else if (t === 'text2text-generation' || t === 'summarization' || t === 'translation') result = await (await pipeline(t === 'translation' ? task as 'translation' : t, dir))(input, gen);
    else if (t === 'token-classification') {
      result = await (await pipeline(t, dir))(input, { ...(strategy === undefined ? {} : { aggregationStrategy: strategy as AggregationStrategy }), ...(ignoreLabels === undefined ? {} : { ignoreLabels }) });
    } else if (t === 'zero-shot-image-classification') {
      result = await (await pipeline(t, dir))(input, candidateLabels!, hypothesisTemplate === undefined ? {} : { hypothesisTemplate });
    } else result = await (await pipeline(t, dir))(input);
    out(`${JSON.stringify(result, null, 2)}\n`);
  },
};
