// Learning-rate schedules against Hugging Face's *_schedule_with_warmup lambdas run by torch's LambdaLR
// (test/data/optim.json from scripts/gen_optim_fixtures.py), known values of the formulas, and bad input.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { zeros } from '../tensor/create.js';
import { expectClose } from '../test-util/fixtures.js';
import { SGD } from './sgd.js';
import { constantSchedule, cosineSchedule, linearSchedule, setLr, type DecayOptions, type Schedule } from './schedule.js';

interface ScheduleFixture {
  schedules: Record<string, { opts: DecayOptions; lrs: number[] }>;
}
const fx = JSON.parse(readFileSync(new URL('../../test/data/optim.json', import.meta.url), 'utf8')) as ScheduleFixture;
const MAKE: Record<string, (o: DecayOptions) => Schedule> = {
  cosine: cosineSchedule, cosine_min: cosineSchedule, cosine_nowarmup: cosineSchedule, linear: linearSchedule, constant: constantSchedule,
};

describe('schedules match Hugging Face / torch LambdaLR', () => {
  for (const [name, c] of Object.entries(fx.schedules)) {
    test(`${name} ${JSON.stringify(c.opts)}`, () => {
      const lr = MAKE[name]!(c.opts);
      expectClose(c.lrs.map((_, step) => lr(step)), c.lrs, 1e-15, 1e-12, name);
    });
  }
});

describe('known values', () => {
  const cos = cosineSchedule({ maxLr: 1, minLr: 0.1, warmupSteps: 10, totalSteps: 110 });
  test('linear warm-up from 0 to maxLr', () => {
    expect(cos(0)).toBe(0);
    expect(cos(5)).toBeCloseTo(0.5, 15);
    expect(cos(10)).toBe(1);
  });
  test('cosine: halfway between maxLr and minLr at the middle of the decay, minLr at totalSteps and constant after', () => {
    expect(cos(60)).toBeCloseTo(0.55, 15);
    expect(cos(35)).toBeCloseTo(0.1 + 0.9 * (0.5 + 0.5 * Math.SQRT1_2), 15);
    expect(cos(110)).toBeCloseTo(0.1, 15);
    // Hugging Face's cosine rises again after totalSteps; this one stays at minLr.
    expect(cos(111)).toBe(0.1);
    expect(cos(1e6)).toBe(0.1);
  });
  test('linear decay and constant', () => {
    const lin = linearSchedule({ maxLr: 2, minLr: 1, warmupSteps: 0, totalSteps: 4 });
    expect([0, 1, 2, 3, 4, 5].map(lin)).toEqual([2, 1.75, 1.5, 1.25, 1, 1]);
    const con = constantSchedule({ maxLr: 3, warmupSteps: 3 });
    expect([0, 1, 2, 3, 100].map(con)).toEqual([0, 1, 2, 3, 3]);
  });
  test('no decay phase when totalSteps equals warmupSteps', () => {
    const s = cosineSchedule({ maxLr: 1, minLr: 0.25, warmupSteps: 4, totalSteps: 4 });
    expect([0, 2, 4, 9].map(s)).toEqual([0, 0.5, 0.25, 0.25]);
  });
});

describe('setLr and bad input', () => {
  test('setLr sets every group', () => {
    const opt = new SGD([{ params: [zeros([1], { requiresGrad: true })], lr: 1 }, { params: [zeros([1], { requiresGrad: true })] }], { lr: 2 });
    setLr(opt, 0.25);
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.25, 0.25]);
    expect(() => setLr(opt, -1)).toThrow(/setLr: lr must be a finite number >= 0, got -1/);
  });
  test('options', () => {
    expect(() => cosineSchedule({ maxLr: -1, warmupSteps: 0, totalSteps: 1 })).toThrow(/cosineSchedule: maxLr must be a finite number >= 0, got -1/);
    expect(() => cosineSchedule({ maxLr: 1, warmupSteps: 1.5, totalSteps: 3 })).toThrow(/cosineSchedule: warmupSteps must be an integer >= 0, got 1.5/);
    expect(() => linearSchedule({ maxLr: 1, warmupSteps: 10, totalSteps: 5 })).toThrow(/linearSchedule: totalSteps must be an integer >= warmupSteps \(10\), got 5/);
    expect(() => linearSchedule({ maxLr: 1, warmupSteps: 0 } as DecayOptions)).toThrow(/totalSteps must be an integer >= warmupSteps \(0\), got undefined/);
    expect(() => cosineSchedule({ maxLr: 1, minLr: 2, warmupSteps: 0, totalSteps: 5 })).toThrow(/cosineSchedule: minLr \(2\) must not exceed maxLr \(1\)/);
    expect(() => constantSchedule({ maxLr: 1, warmupSteps: -1 })).toThrow(/constantSchedule: warmupSteps must be an integer >= 0, got -1/);
  });
  test('steps', () => {
    expect(() => cosineSchedule({ maxLr: 1, warmupSteps: 0, totalSteps: 5 })(-1)).toThrow(/cosineSchedule: step must be a finite number >= 0, got -1/);
    expect(() => constantSchedule({ maxLr: 1, warmupSteps: 0 })(Number.NaN)).toThrow(/constantSchedule: step must be a finite number >= 0, got NaN/);
  });
});
