import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // package.json maps '#platform' to dist/; tests run the sources.
  resolve: { alias: { '#platform': fileURLToPath(new URL('./src/platform/node.ts', import.meta.url)) } },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    // Hooks that load a whole corpus (SpamAssassin, CMUdict) take seconds, more on a busy CI machine.
    hookTimeout: 120_000,
    globalSetup: ['src/test-util/tmpdir-setup.ts'],
    setupFiles: ['src/test-util/backends-setup.ts'],
  },
});
