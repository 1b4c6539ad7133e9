// Vitest global setup: the run's temporary files go to one folder of its own (TMPDIR, inherited by the test
// workers and the CLIs they spawn), removed when the run ends, so tests' mkdtemp folders never pile up in /tmp.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'attend-test-'));
  process.env['TMPDIR'] = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
