// Instruction tasks with checkable answers (arithmetic, sorting, reversing, counting, unit conversion, following a
// format) from a seeded generator, with a held-out split (instances and one phrasing per family never trained on), a
// checker that serves as the RL reward, and plausible wrong answers for preference pairs.

import { align } from './wer.js';

/** One generated task: a prompt and the one answer the checker accepts. */
export interface InstructTask {
  /** The task family, e.g. 'add'. */
  family: string;
  /** What it exercises: arithmetic, sorting, reversing, counting, conversion, format. */
  skill: string;
  /** The instance without its phrasing (the operands): what the instance hold-out is decided on. */
  key: string;
  /** Index of the phrasing in the family's templates; the last one is held out. */
  template: number;
  /** The phrasing is the family's held-out one (never in training). */
  heldOutTemplate: boolean;
  prompt: string;
  answer: string;
  /** Plausible wrong answers (distinct, never the answer, at least one): rejected sides of preference pairs. */
  wrong: string[];
}

interface Instance {
  key: string;
  fields: Record<string, string>;
  answer: string;
  /** Plausible wrong answers (mistakes a learner makes); filtered later against the answer. */
  wrong: string[];
}

export interface TaskFamily {
  name: string;
  skill: string;
  /** Phrasings with {field} slots; the LAST is the held-out phrasing, used only in held-out prompts. */
  templates: readonly string[];
  sample(rng: Rng): Instance;
}

// ---- random numbers ----

/** A small seeded generator (mulberry32): the task streams depend on nothing but their seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = (Math.imul(seed | 0, 0x9e3779b1) ^ 0x85ebca6b) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

/** FNV-1a 32-bit hash of a string. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// ---- the families ----

const CONSONANTS = 'bdfgklmnprstvz';
const VOWELS = 'aeiou';

/** A pronounceable made-up word of `syllables` consonant-vowel syllables ("bako", "mirudo"). */
function pseudoWord(rng: Rng, syllables: number): string {
  let w = '';
  for (let i = 0; i < syllables; i++) w += rng.pick([...CONSONANTS]) + rng.pick([...VOWELS]);
  return w;
}

const reverseString = (s: string): string => [...s].reverse().join('');
/** The same string with the letters at i and i + 1 swapped. */
const swapAt = (s: string, i: number): string => s.slice(0, i) + s[i + 1]! + s[i]! + s.slice(i + 2);
/** A copy with the items at i and i + 1 swapped. */
const swapItems = <T>(xs: readonly T[], i: number): T[] => xs.map((x, j) => (j === i ? xs[i + 1]! : j === i + 1 ? xs[i]! : x));
/** Column-wise digit sum without carries (a classic addition slip): 38 + 45 -> 73. */
export function sumWithoutCarry(a: number, b: number): number {
  let out = 0, place = 1;
  while (a > 0 || b > 0) {
    out += ((a % 10 + b % 10) % 10) * place;
    a = Math.floor(a / 10); b = Math.floor(b / 10); place *= 10;
  }
  return out;
}
/** Column-wise |digit difference| (subtracting the smaller digit from the larger, a borrowing slip): 52 - 38 -> 26. */
export function differenceWithoutBorrow(a: number, b: number): number {
  let out = 0, place = 1;
  while (a > 0 || b > 0) {
    out += Math.abs((a % 10) - (b % 10)) * place;
    a = Math.floor(a / 10); b = Math.floor(b / 10); place *= 10;
  }
  return out;
}
const nums = (xs: number[]): string[] => xs.filter((x) => x >= 0).map(String);

/** [singular, plural, target unit (plural), factor] for the conversions. */
const UNITS: readonly [string, string, string, number][] = [
  ['kilometer', 'kilometers', 'meters', 1000], ['kilogram', 'kilograms', 'grams', 1000], ['meter', 'meters', 'centimeters', 100],
  ['centimeter', 'centimeters', 'millimeters', 10], ['hour', 'hours', 'minutes', 60], ['minute', 'minutes', 'seconds', 60],
  ['day', 'days', 'hours', 24], ['foot', 'feet', 'inches', 12], ['week', 'weeks', 'days', 7], ['dollar', 'dollars', 'cents', 100],
];

export const TASK_FAMILIES: readonly TaskFamily[] = [
  {
    name: 'add', skill: 'arithmetic',
    templates: ['What is {a} plus {b}?', 'Add {a} and {b}.', '{a} + {b} = ?', 'Calculate {a} plus {b}.'],
    sample(rng) {
      const a = rng.int(0, 99), b = rng.int(0, 99), s = a + b;
      // The key is the unordered pair: b + a is held out with a + b, so commutativity cannot leak a held-out sum.
      return { key: `${Math.min(a, b)}+${Math.max(a, b)}`, fields: { a: `${a}`, b: `${b}` }, answer: `${s}`, wrong: nums([s + 1, s - 1, s + 10, s - 10, sumWithoutCarry(a, b)]) };
    },
  },
  {
    name: 'subtract', skill: 'arithmetic',
    templates: ['What is {a} minus {b}?', 'Subtract {b} from {a}.', '{a} - {b} = ?', 'Calculate {a} minus {b}.'],
    sample(rng) {
      const x = rng.int(0, 99), y = rng.int(0, 99), a = Math.max(x, y), b = Math.min(x, y), d = a - b;
      return { key: `${a}-${b}`, fields: { a: `${a}`, b: `${b}` }, answer: `${d}`, wrong: nums([d + 1, d - 1, d + 10, d - 10, differenceWithoutBorrow(a, b), a + b]) };
    },
  },
  {
    name: 'multiply', skill: 'arithmetic',
    templates: ['What is {a} times {b}?', 'Multiply {a} by {b}.', '{a} * {b} = ?', 'Calculate {a} times {b}.'],
    sample(rng) {
      const a = rng.int(2, 12), b = rng.int(2, 20), p = a * b;
      return { key: `${Math.min(a, b)}*${Math.max(a, b)}`, fields: { a: `${a}`, b: `${b}` }, answer: `${p}`, wrong: nums([p + a, p - a, p + b, p - b, a + b]) };
    },
  },
  {
    name: 'sort', skill: 'sorting',
    templates: ['Sort in ascending order: {list}', 'Sort these numbers from smallest to largest: {list}', 'Put in increasing order: {list}', 'Arrange from smallest to largest: {list}'],
    sample(rng) {
      const n = rng.int(3, 5), set = new Set<number>();
      while (set.size < n) set.add(rng.int(0, 99));
      const xs = [...set], up = [...xs].sort((p, q) => p - q), join = (v: number[]) => v.join(', ');
      return { key: join(xs), fields: { list: join(xs) }, answer: join(up), wrong: [join([...up].reverse()), join(xs), join(swapItems(up, rng.int(0, n - 2)))] };
    },
  },
  {
    name: 'reverse', skill: 'reversing',
    templates: ["Reverse the letters of '{w}'.", "Write '{w}' backwards.", "Spell '{w}' in reverse.", "What is '{w}' written backwards?"],
    sample(rng) {
      const w = pseudoWord(rng, rng.int(2, 3)), r = reverseString(w);
      return { key: w, fields: { w }, answer: r, wrong: [w, swapAt(r, rng.int(0, r.length - 2)), r.slice(0, -1)] };
    },
  },
  {
    name: 'count', skill: 'counting',
    templates: ["How many times does the letter {c} appear in '{w}'?", "Count the letter {c} in '{w}'.", "In '{w}', how often does the letter {c} occur?", "Count how many {c} letters are in '{w}'."],
    sample(rng) {
      const w = pseudoWord(rng, rng.int(3, 4));
      const c = rng.next() < 0.8 ? rng.pick([...w]) : rng.pick([...'bdfgklmnprstvzaeiou'].filter((x) => !w.includes(x)));
      const n = [...w].filter((x) => x === c).length;
      return { key: `${c}:${w}`, fields: { c, w }, answer: `${n}`, wrong: nums([n + 1, n - 1, n + 2]) };
    },
  },
  {
    name: 'convert', skill: 'conversion',
    templates: ['Convert {n} {from} to {to}.', 'How many {to} are in {n} {from}?', '{n} {from} = ? {to}', 'Express {n} {from} in {to}.'],
    sample(rng) {
      const [one, many, to, f] = rng.pick(UNITS), n = rng.int(1, 20), v = n * f;
      return { key: `${many}:${n}`, fields: { n: `${n}`, from: n === 1 ? one : many, to }, answer: `${v}`, wrong: nums([n * f * 10, f >= 10 && f % 10 === 0 ? (n * f) / 10 : v + n, n, v + f, v - f]) };
    },
  },
  {
    name: 'uppercase', skill: 'format',
    templates: ["Write '{w}' in capital letters.", "Convert '{w}' to uppercase.", "Make '{w}' all caps.", "Write '{w}' in uppercase letters."],
    sample(rng) {
      const w = pseudoWord(rng, rng.int(2, 3)), u = w.toUpperCase();
      return { key: w, fields: { w }, answer: u, wrong: [w, u[0]! + w.slice(1), u.slice(0, -1) + w.slice(-1)] };
    },
  },
  {
    name: 'spell', skill: 'format',
    templates: ["Spell '{w}' with dashes between the letters.", "Put a dash between each letter of '{w}'.", "Write '{w}' with hyphens between the letters.", "Separate the letters of '{w}' with dashes."],
    sample(rng) {
      const w = pseudoWord(rng, rng.int(2, 3)), s = [...w].join('-');
      const drop = rng.int(1, w.length - 1); // one dash left out: 'bako' -> 'b-ak-o'
      return { key: w, fields: { w }, answer: s, wrong: [w, [...w].join(' '), [...w.slice(0, drop)].join('-') + [...w.slice(drop)].join('-')] };
    },
  },
];

const FAMILY_BY_NAME = new Map(TASK_FAMILIES.map((f) => [f.name, f]));

/** Fills a template's {slots}. */
function render(template: string, fields: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => {
    const v = fields[k];
    if (v === undefined) throw new Error(`instruct-tasks: the template '${template}' has a slot {${k}} the instance does not fill`);
    return v;
  });
}

// ---- the split ----

export interface InstructTasksOptions {
  /** Seed of the instance hold-out (which instances are held out); default 0. */
  splitSeed?: number;
  /** Fraction of each family's instances held out (default 0.1), decided by a hash of the family and the instance. */
  heldOutFraction?: number;
  /** Families to use (default: all of TASK_FAMILIES). */
  families?: readonly string[];
}

/**
 * The task generator with its split. An instance (a family's operands) is held out when a hash of (split seed, family,
 * instance) falls below heldOutFraction, whatever the order it is drawn in; the last phrasing of every family is held
 * out too. Training draws only instances that are not held out, in the other phrasings; held-out sets draw only
 * held-out instances, in every phrasing (the held-out one included).
 */
export class InstructTasks {
  readonly families: readonly TaskFamily[];
  readonly splitSeed: number;
  readonly heldOutFraction: number;

  constructor(opts: InstructTasksOptions = {}) {
    this.splitSeed = opts.splitSeed ?? 0;
    this.heldOutFraction = opts.heldOutFraction ?? 0.1;
    if (!Number.isSafeInteger(this.splitSeed)) throw new Error(`instruct-tasks: splitSeed must be an integer, got ${String(opts.splitSeed)}`);
    if (!(this.heldOutFraction > 0 && this.heldOutFraction < 1)) throw new Error(`instruct-tasks: heldOutFraction must be in (0, 1), got ${String(opts.heldOutFraction)}`);
    const names = opts.families ?? TASK_FAMILIES.map((f) => f.name);
    if (names.length === 0) throw new Error('instruct-tasks: families is empty');
    this.families = names.map((n) => {
      const f = FAMILY_BY_NAME.get(n);
      if (!f) throw new Error(`instruct-tasks: unknown task family '${n}'; families: ${TASK_FAMILIES.map((x) => x.name).join(', ')}`);
      return f;
    });
  }

  /** Whether the instance `key` of `family` is held out. */
  isHeldOut(family: string, key: string): boolean {
    return hashString(`${this.splitSeed}|${family}|${key}`) / 4294967296 < this.heldOutFraction;
  }

  private task(f: TaskFamily, inst: Instance, template: number): InstructTask {
    // Every sampler's first mistake differs from its answer (answer + 1, the list reversed, the word unreversed, ...).
    const wrong = [...new Set(inst.wrong)].filter((w) => w !== inst.answer && w !== '');
    return { family: f.name, skill: f.skill, key: inst.key, template, heldOutTemplate: template === f.templates.length - 1, prompt: render(f.templates[template]!, inst.fields), answer: inst.answer, wrong };
  }

  /** A draw of `f` on the wanted side of the instance split (rejection sampling; an instance space is never all one side). */
  private draw(f: TaskFamily, rng: Rng, heldOut: boolean): Instance {
    for (let tries = 0; tries < 100_000; tries++) {
      const inst = f.sample(rng);
      if (this.isHeldOut(f.name, inst.key) === heldOut) return inst;
    }
    throw new Error(`instruct-tasks: no ${heldOut ? 'held-out' : 'training'} instance of '${f.name}' in 100000 draws (heldOutFraction ${this.heldOutFraction})`);
  }

  /** `n` training tasks drawn with `seed`: families uniformly, instances not held out, training phrasings only. */
  training(n: number, seed: number): InstructTask[] {
    checkCount(n, 'training');
    const rng = new Rng(seed);
    return Array.from({ length: n }, () => {
      const f = rng.pick(this.families);
      const inst = this.draw(f, rng, false);
      return this.task(f, inst, rng.int(0, f.templates.length - 2));
    });
  }

  /**
   * `n` distinct held-out tasks drawn with `seed`: the families in turn, held-out instances only, the phrasings in turn
   * (so each family's held-out phrasing makes 1 / templates of its prompts). Deterministic given (n, seed).
   */
  heldOut(n: number, seed: number): InstructTask[] {
    checkCount(n, 'heldOut');
    const rng = new Rng(seed);
    const out: InstructTask[] = [];
    const seen = new Set<string>();
    const turns = new Map<string, number>();
    for (let misses = 0; out.length < n;) {
      const f = this.families[out.length % this.families.length]!;
      const turn = turns.get(f.name) ?? 0;
      const t = this.task(f, this.draw(f, rng, true), turn % f.templates.length);
      if (seen.has(t.prompt)) {
        if (++misses > 100_000) throw new Error(`instruct-tasks: cannot find ${n} distinct held-out tasks (found ${out.length}); ask for fewer or raise heldOutFraction`);
        continue;
      }
      seen.add(t.prompt);
      turns.set(f.name, turn + 1);
      out.push(t);
    }
    return out;
  }
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`instruct-tasks: ${what}: the count must be a positive integer, got ${String(n)}`);
}

// ---- a careless writer ----

/**
 * The answers a careless writer gives to `tasks`: with probability `rate` (seeded) the family's typical slip, its first
 * plausible mistake (the sum off by one, the list sorted the wrong way round, the word left unreversed or without its
 * dashes, a zero too many), else the right answer. Demonstrations written this way carry a systematic error that
 * imitation learns and a checker or a preference does not.
 */
export function carelessAnswers(tasks: readonly InstructTask[], rate: number, seed: number): string[] {
  if (!(rate >= 0 && rate < 1)) throw new Error(`instruct-tasks: the slip rate must be in [0, 1), got ${String(rate)}`);
  const rng = new Rng(seed);
  return tasks.map((t) => (rng.next() < rate ? t.wrong[0]! : t.answer));
}

// ---- checking ----

/**
 * The checker: 1 when the completion, with surrounding white space removed, is exactly the answer (case, digits and
 * separators included: following the format is part of the task); else 0. Usable as GRPO's reward on records with an
 * "answer" field.
 */
export function checkAnswer(completion: string, answer: string): number {
  return completion.trim() === answer ? 1 : 0;
}

/**
 * Partial credit for RL: 1 for the exact answer (the checker's 1); otherwise half the share of the answer's characters
 * a completion gets right, 0.5 × max(0, 1 − edit distance / answer length), so that a near miss ('129' for '128',
 * one dash left out) earns more than a far one and a group of wrong samples still has a best one. Case, digits and
 * separators count as in the checker.
 */
export function partialCredit(completion: string, answer: string): number {
  const c = completion.trim();
  if (c === answer) return 1;
  return 0.5 * Math.max(0, 1 - align([...answer], [...c]).errors / [...answer].length);
}

const answerField = (record: Readonly<Record<string, unknown>>): string => {
  const answer = record['answer'];
  if (typeof answer !== 'string') throw new Error(`instruct-tasks: the reward needs a string "answer" in the prompt record, got ${JSON.stringify(answer)}`);
  return answer;
};

/** The checker as a reward function over prompt records that carry the task's "answer". */
export function taskReward(completion: string, record: Readonly<Record<string, unknown>>): number {
  return checkAnswer(completion, answerField(record));
}

/** `partialCredit` as a reward function over prompt records that carry the task's "answer". */
export function taskPartialReward(completion: string, record: Readonly<Record<string, unknown>>): number {
  return partialCredit(completion, answerField(record));
}
