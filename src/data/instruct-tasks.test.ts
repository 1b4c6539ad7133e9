// Instruction tasks: answers checked by an independent solver that reads each prompt, the checker on hand-worked
// cases, determinism, the held-out split's disjointness (instances and phrasings), plausible wrong answers, bad input.

import { describe, expect, test } from 'vitest';
import { carelessAnswers, checkAnswer, differenceWithoutBorrow, InstructTasks, partialCredit, Rng, sumWithoutCarry, TASK_FAMILIES, taskPartialReward, taskReward, type InstructTask } from './instruct-tasks.js';

const FACTORS: Record<string, number> = {
  kilometer: 1000, kilogram: 1000, meter: 100, centimeter: 10, hour: 60, minute: 60, day: 24, foot: 12, week: 7, dollar: 100,
  kilometers: 1000, kilograms: 1000, meters: 100, centimeters: 10, hours: 60, minutes: 60, days: 24, feet: 12, weeks: 7, dollars: 100,
};

/** Solves a prompt from its text alone (nothing from the generator but the phrasing's words). */
function solve(prompt: string): string {
  let m: RegExpMatchArray | null;
  const quoted = /'([a-z]+)'/.exec(prompt)?.[1];
  if ((m = /(\d+) (?:plus|\+) (\d+)|Add (\d+) and (\d+)/.exec(prompt))) { const [x, y] = m.slice(1).filter(Boolean).map(Number); return String(x! + y!); }
  if ((m = /(\d+) (?:minus|-) (\d+)/.exec(prompt))) return String(Number(m[1]) - Number(m[2]));
  if ((m = /Subtract (\d+) from (\d+)/.exec(prompt))) return String(Number(m[2]) - Number(m[1]));
  if ((m = /(\d+) (?:times|\*) (\d+)|Multiply (\d+) by (\d+)/.exec(prompt))) { const [x, y] = m.slice(1).filter(Boolean).map(Number); return String(x! * y!); }
  if ((m = /: ([\d, ]+)$/.exec(prompt))) return m[1]!.split(', ').map(Number).sort((a, b) => a - b).join(', ');
  if ((m = /letter ([a-z]) |letter ([a-z])\.|many ([a-z]) letters/.exec(prompt))) { const c = m.slice(1).find(Boolean)!; return String([...quoted!].filter((x) => x === c).length); }
  if ((m = /^(?:Convert |How many [a-z]+ are in |Express )?(\d+) ([a-z]+)/.exec(prompt)) && FACTORS[m[2]!]) return String(Number(m[1]) * FACTORS[m[2]!]!);
  if ((m = /(\d+) ([a-z]+) = \?/.exec(prompt))) return String(Number(m[1]) * FACTORS[m[2]!]!);
  if (/backwards|reverse/i.test(prompt)) return [...quoted!].reverse().join('');
  if (/capital|uppercase|caps/.test(prompt)) return quoted!.toUpperCase();
  if (/dash|hyphen/.test(prompt)) return [...quoted!].join('-');
  throw new Error(`no solver for '${prompt}'`);
}

describe('the generator', () => {
  const tasks = new InstructTasks();

  test('every answer is what an independent solver computes from the prompt (2000 training + 300 held-out tasks)', () => {
    for (const t of [...tasks.training(2000, 1), ...tasks.heldOut(300, 2)]) expect({ prompt: t.prompt, answer: solve(t.prompt) }).toEqual({ prompt: t.prompt, answer: t.answer });
  });

  test('hand-worked instances', () => {
    // A stream is fixed by its seed: the same tasks every time, others with another seed.
    expect(tasks.training(50, 7)).toEqual(tasks.training(50, 7));
    expect(tasks.heldOut(40, 3)).toEqual(tasks.heldOut(40, 3));
    expect(tasks.training(50, 8).map((t) => t.prompt)).not.toEqual(tasks.training(50, 7).map((t) => t.prompt));
    const rng = new Rng(5), again = new Rng(5);
    expect(Array.from({ length: 5 }, () => rng.next())).toEqual(Array.from({ length: 5 }, () => again.next()));
    // The classic slips the wrong answers model, worked by hand: 38 + 45 = 83 (without the carry: 73);
    // 52 - 38 = 14 (subtracting the smaller digit in each column: |5-3| |2-8| = 26); 7 + 5 without carry = 2.
    expect(sumWithoutCarry(38, 45)).toBe(73);
    expect(sumWithoutCarry(7, 5)).toBe(2);
    expect(sumWithoutCarry(99, 1)).toBe(90);
    expect(differenceWithoutBorrow(52, 38)).toBe(26);
    expect(differenceWithoutBorrow(40, 7)).toBe(47);
  });

  test('each family appears in training with its training phrasings only', () => {
    const train = tasks.training(3000, 4);
    for (const f of TASK_FAMILIES) {
      const own = train.filter((t) => t.family === f.name);
      expect(own.length).toBeGreaterThan(200);
      expect(new Set(own.map((t) => t.template))).toEqual(new Set(f.templates.slice(0, -1).map((_, i) => i)));
      expect(own.some((t) => t.heldOutTemplate)).toBe(false);
    }
  });

  test('held-out tasks: held-out instances only, distinct prompts, every phrasing in turn (a quarter in the held-out one)', () => {
    const held = tasks.heldOut(360, 9);
    expect(new Set(held.map((t) => t.prompt)).size).toBe(360);
    for (const t of held) expect(tasks.isHeldOut(t.family, t.key)).toBe(true);
    for (const f of TASK_FAMILIES) {
      const own = held.filter((t) => t.family === f.name);
      expect(own.length).toBe(40);
      expect(own.filter((t) => t.heldOutTemplate).length).toBe(10);
      expect(own.filter((t) => t.heldOutTemplate).every((t) => t.template === f.templates.length - 1)).toBe(true);
    }
  });

  test('the split is disjoint: no training instance or phrasing is held out, whatever the seeds', () => {
    const held = tasks.heldOut(300, 11);
    const heldKeys = new Set(held.map((t) => `${t.family}|${t.key}`));
    const heldTemplates = new Set(TASK_FAMILIES.map((f) => `${f.name}|${f.templates.at(-1)!}`));
    for (const seed of [0, 1, 2]) {
      for (const t of tasks.training(4000, seed)) {
        expect(heldKeys.has(`${t.family}|${t.key}`)).toBe(false);
        expect(tasks.isHeldOut(t.family, t.key)).toBe(false);
        expect(heldTemplates.has(`${t.family}|${TASK_FAMILIES.find((f) => f.name === t.family)!.templates[t.template]!}`)).toBe(false);
      }
    }
    // The commutative operations hold out both orders: the key is the unordered pair.
    const add = held.find((t) => t.family === 'add')!;
    const [x, y] = add.key.split('+').map(Number);
    expect(x).toBeLessThanOrEqual(y!);
    // About heldOutFraction of the instances are held out; another split seed holds out others.
    const keys = Array.from({ length: 100 }, (_, a) => Array.from({ length: 100 }, (_, b) => `${Math.min(a, b)}+${Math.max(a, b)}`)).flat();
    const share = keys.filter((k) => tasks.isHeldOut('add', k)).length / keys.length;
    expect(share).toBeGreaterThan(0.07);
    expect(share).toBeLessThan(0.13);
    const other = new InstructTasks({ splitSeed: 1 });
    expect(keys.filter((k) => tasks.isHeldOut('add', k) !== other.isHeldOut('add', k)).length).toBeGreaterThan(500);
  });

  test('wrong answers: plausible, distinct, never right', () => {
    const all = [...tasks.training(2000, 5), ...tasks.heldOut(300, 6)];
    for (const t of all) {
      expect(t.wrong.length).toBeGreaterThan(0);
      expect(new Set(t.wrong).size).toBe(t.wrong.length);
      for (const w of t.wrong) expect(checkAnswer(w, t.answer)).toBe(0);
    }
    const byFamily = (name: string): InstructTask[] => all.filter((t) => t.family === name);
    for (const t of byFamily('add')) expect(t.wrong).toContain(String(Number(t.answer) + 1));
    for (const t of byFamily('sort')) expect(t.wrong).toContain(t.answer.split(', ').reverse().join(', '));
    for (const t of byFamily('reverse')) expect(t.wrong).toContain([...t.answer].reverse().join(''));
    for (const t of byFamily('uppercase')) expect(t.wrong).toContain(t.answer.toLowerCase());
    for (const t of byFamily('spell')) {
      expect(t.wrong).toContain(t.answer.replace(/-/g, ''));
      expect(t.wrong.some((w) => w.replace(/-/g, '') === t.answer.replace(/-/g, '') && (w.match(/-/g) ?? []).length === (t.answer.match(/-/g) ?? []).length - 1)).toBe(true);
    }
  });
});

describe('the checker', () => {
  test('exact answers, white space around them ignored; format and case count', () => {
    expect(checkAnswer('83', '83')).toBe(1);
    expect(checkAnswer(' 83\n', '83')).toBe(1);
    expect(checkAnswer('83.', '83')).toBe(0);
    expect(checkAnswer('8 3', '83')).toBe(0);
    expect(checkAnswer('The answer is 83', '83')).toBe(0);
    expect(checkAnswer('', '83')).toBe(0);
    expect(checkAnswer('3, 17, 42', '3, 17, 42')).toBe(1);
    expect(checkAnswer('3,17,42', '3, 17, 42')).toBe(0);
    expect(checkAnswer('BAKO', 'BAKO')).toBe(1);
    expect(checkAnswer('Bako', 'BAKO')).toBe(0);
    expect(checkAnswer('b-a-k-o', 'b-a-k-o')).toBe(1);
    expect(checkAnswer('b-ak-o', 'b-a-k-o')).toBe(0);
  });
  test('as a reward over prompt records', () => {
    expect(taskReward(' 12 ', { answer: '12' })).toBe(1);
    expect(taskReward('13', { answer: '12' })).toBe(0);
    expect(() => taskReward('12', {})).toThrow('needs a string "answer" in the prompt record, got undefined');
    expect(() => taskReward('12', { answer: 12 })).toThrow('got 12');
  });
  test('partial credit: 1 when exact, else half the share of the answer\'s characters right (by edit distance)', () => {
    expect(partialCredit(' 128 ', '128')).toBe(1);
    expect(partialCredit('129', '128')).toBeCloseTo(0.5 * (2 / 3), 12); // one substitution in three characters
    expect(partialCredit('12', '128')).toBeCloseTo(0.5 * (2 / 3), 12); // one deletion
    expect(partialCredit('b-ak-o', 'b-a-k-o')).toBeCloseTo(0.5 * (6 / 7), 12); // one dash left out
    expect(partialCredit('bako', 'BAKO')).toBe(0); // four substitutions: no credit
    expect(partialCredit('', '83')).toBe(0);
    expect(partialCredit('83 and more text', '83')).toBe(0); // more edits than characters: clamped at 0
    expect(taskPartialReward('12', { answer: '128' })).toBeCloseTo(1 / 3, 12);
    expect(() => taskPartialReward('12', {})).toThrow('needs a string "answer" in the prompt record');
  });
});

describe('a careless writer', () => {
  const tasks = new InstructTasks().training(4000, 9);
  test('a share of the answers carry the family\'s typical slip, the rest are right; seeded', () => {
    const answers = carelessAnswers(tasks, 0.4, 1);
    const slipped = answers.filter((a, i) => a !== tasks[i]!.answer);
    // 4000 draws at 0.4: the share is 0.4 within 4 standard deviations (0.031).
    expect(Math.abs(slipped.length / tasks.length - 0.4)).toBeLessThan(0.031);
    answers.forEach((a, i) => expect([tasks[i]!.answer, tasks[i]!.wrong[0]]).toContain(a));
    // The slips are the systematic ones: the word left unreversed, the list sorted the wrong way, one too many.
    const of = (family: string) => tasks.map((t, i) => [t, answers[i]!] as const).filter(([t, a]) => t.family === family && a !== t.answer);
    for (const [t, a] of of('reverse')) expect(a).toBe(/'([a-z]+)'/.exec(t.prompt)![1]);
    for (const [t, a] of of('sort')) expect(a).toBe(t.answer.split(', ').reverse().join(', '));
    for (const [t, a] of of('count')) expect(Number(a)).toBe(Number(t.answer) + 1);
    expect(carelessAnswers(tasks, 0.4, 1)).toEqual(answers);
    expect(carelessAnswers(tasks, 0.4, 2)).not.toEqual(answers);
    expect(carelessAnswers(tasks, 0, 1)).toEqual(tasks.map((t) => t.answer));
    expect(() => carelessAnswers(tasks, 1, 1)).toThrow('the slip rate must be in [0, 1), got 1');
  });
});

describe('bad input', () => {
  test('options and counts', () => {
    expect(() => new InstructTasks({ heldOutFraction: 0 })).toThrow('heldOutFraction must be in (0, 1), got 0');
    expect(() => new InstructTasks({ heldOutFraction: 1 })).toThrow('heldOutFraction must be in (0, 1)');
    expect(() => new InstructTasks({ splitSeed: 0.5 })).toThrow('splitSeed must be an integer, got 0.5');
    expect(() => new InstructTasks({ families: ['add', 'divide'] })).toThrow("unknown task family 'divide'; families: add, subtract, multiply, sort, reverse, count, convert, uppercase, spell");
    expect(() => new InstructTasks({ families: [] })).toThrow('families is empty');
    const t = new InstructTasks({ families: ['multiply'] });
    expect(() => t.training(0, 1)).toThrow('training: the count must be a positive integer, got 0');
    expect(() => t.heldOut(2.5, 1)).toThrow('heldOut: the count must be a positive integer, got 2.5');
    // Multiplication has 209 ordered instances, about a tenth held out: far fewer than 400 distinct held-out prompts.
    expect(() => t.heldOut(400, 1)).toThrow(/cannot find 400 distinct held-out tasks \(found \d+\)/);
  });
});
