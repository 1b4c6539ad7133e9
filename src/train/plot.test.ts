// The SVG line chart and the progress helpers: tick positions, pixel coordinates worked out by hand, legend, gaps.

import { describe, expect, test } from 'vitest';
import { lineChart, niceTicks } from './plot.js';
import { formatDuration, progressLine } from './progress.js';

describe('lineChart', () => {
  test('ticks at 1, 2, 5 x 10^k', () => {
    expect(niceTicks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.13, 0.87)).toEqual([0.2, 0.4, 0.6, 0.8]);
    expect(niceTicks(0, 1000)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(niceTicks(2.5, 2.62)).toEqual([2.5, 2.55, 2.6]); // a step of 0.024 rounds up to 0.05
  });

  test('coordinates: the plot area is 72..696 x 20..384 in a 720 x 440 picture without a title', () => {
    const svg = lineChart([{ name: 'a', points: [[0, 0], [5, 2], [10, 10]] }]);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="720" height="440"')).toBe(true);
    // x spans the data: 72 + x / 10 * 624. y spans the data and 4% more each way, -0.4..10.4: 384 - (y + 0.4) / 10.8 * 364.
    expect(svg).toContain('<polyline points="72.00,370.52 384.00,303.11 696.00,33.48"/>');
    expect(svg).toContain('>10</text>');
  });

  test('several named curves with a legend, labels, escaping, gaps at non-finite values and markers on sparse curves', () => {
    const svg = lineChart(
      [
        { name: 'train <loss>', points: [[1, 3], [2, 2.5], [3, Number.NaN], [4, 2], [5, 1.8]] },
        { name: 'eval loss', points: [[5, 2.1]], color: 'black' },
      ],
      { title: 'Loss & more', xLabel: 'step', yLabel: 'loss' },
    );
    expect(svg.match(/<polyline /g)).toHaveLength(2); // the NaN splits the first curve; one point draws no line
    expect(svg).toContain('>train &lt;loss&gt;</text>');
    expect(svg).toContain('>eval loss</text>');
    expect(svg).toContain('>Loss &amp; more</text>');
    expect(svg).toContain('>step</text>');
    expect(svg).toContain('rotate(-90)" text-anchor="middle">loss</text>');
    expect(svg.match(/<circle /g)).toHaveLength(5);
    expect(svg).toContain('fill="black"');
  });

  test('a log axis has ticks at powers of ten; nothing to draw is an error', () => {
    const svg = lineChart([{ name: 'x', points: [[0, 0.01], [1, 10], [2, -1]] }], { logY: true });
    for (const t of ['0.01', '0.1', '1', '10']) expect(svg).toContain(`>${t}</text>`);
    expect(() => lineChart([{ name: 'x', points: [[0, Number.NaN]] }])).toThrow(/no finite points to draw/);
  });
});

describe('progress', () => {
  test('durations and the line', () => {
    expect([42, 185, 3725, Number.NaN].map(formatDuration)).toEqual(['42s', '3m05s', '1h02m', '?']);
    expect(progressLine({ step: 7, total: 120, loss: 2.345678, lr: 0.0003, tokensPerSecond: 12345, etaSeconds: 65 }))
      .toBe('step   7/120 | loss 2.3457 | lr 3.00e-4 | 12.3k tok/s | ETA 1m05s');
  });
});
