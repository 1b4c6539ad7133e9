// src/browser.ts (the package root for browsers) is generated from src/index.ts; it must be current.

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

test('src/browser.ts is src/index.ts without the Node-only modules (scripts/browser-entry.mjs --check)', () => {
  const script = fileURLToPath(new URL('../../scripts/browser-entry.mjs', import.meta.url));
  expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
});
