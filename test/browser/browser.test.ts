// The package in a browser, as a user gets it: Vite (and esbuild) bundle test/browser/app, which imports 'attend' by
// name (package.json "exports" -> dist/browser.js, so run `npm run build` first), with no plugin and no warning; a
// local server sends the page and the gpt2 fixture; headless Debian Chromium (never a downloaded browser) runs it with
// cross-origin isolation (SharedArrayBuffer: the threaded wasm build) and without (one thread). The page's numbers
// are checked against PyTorch's (the fixture's logits and greedy tokens).

import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = join(ROOT, 'test/browser/app');
const GPT2 = join(ROOT, 'test/data/hf/gpt2');
const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const CHROMIUM = '/usr/lib/chromium/chromium';
const TYPES: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.map': 'application/json',
};

let work = '';
let appDir = '';
let outDir = '';
const viteWarnings: string[] = [];

/**
 * The app in a temporary folder whose node_modules/attend is this package as `npm install` would lay it out (package.json,
 * dist/, build/; its dependencies linked), with the gpt2 fixture in public/gpt2 (Vite copies it beside the build).
 */
async function makeApp(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist/browser.js'))) throw new Error('dist/browser.js is missing: run `npm run build` first');
  work = await mkdtemp(join(tmpdir(), 'attend-browser-'));
  appDir = join(work, 'app');
  outDir = join(work, 'out');
  await cp(APP, appDir, { recursive: true });
  const pkg = join(appDir, 'node_modules/attend');
  await mkdir(pkg, { recursive: true });
  for (const f of ['package.json', 'dist', 'build']) await cp(join(ROOT, f), join(pkg, f), { recursive: true, filter: (f) => !f.endsWith('.map') });
  const { dependencies } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(dependencies)) {
    await mkdir(dirname(join(appDir, 'node_modules', dep)), { recursive: true });
    await symlink(join(ROOT, 'node_modules', dep), join(appDir, 'node_modules', dep), 'dir');
  }
  await cp(GPT2, join(appDir, 'public/gpt2'), { recursive: true });
}

/** A Vite logger that records every warning and error. */
function recordingLogger(createLogger: typeof import('vite').createLogger, into: string[]): import('vite').Logger {
  const logger = createLogger('warn', { allowClearScreen: false });
  for (const level of ['warn', 'warnOnce', 'error'] as const) {
    logger[level] = (msg: string) => { into.push(`${level}: ${msg}`); };
  }
  return logger;
}

/** Serves the built app (the fixture at /gpt2/) with Range requests, and COOP/COEP when `isolated`. */
function serve(isolated: boolean): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = join(outDir, normalize(path === '/' ? 'index.html' : path));
    const headers: Record<string, string> = { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Accept-Ranges': 'bytes' };
    if (isolated) Object.assign(headers, ISOLATION);
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0, end = info.size - 1, status = 200;
    if (range) {
      start = Number(range[1]);
      end = Math.min(range[2] ? Number(range[2]) : end, info.size - 1);
      if (start >= info.size) {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${info.size}` }).end();
        return;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${info.size}`;
    }
    headers['Content-Length'] = String(end - start + 1);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') res.end();
    else createReadStream(file, { start, end }).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    resolve({ server, url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/` });
  }));
}

beforeAll(async () => {
  await makeApp();
  const { build, createLogger } = await import('vite');
  await build({ root: appDir, configFile: false, logLevel: 'warn', customLogger: recordingLogger(createLogger, viteWarnings), build: { outDir, emptyOutDir: true } });
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('bundling', () => {
  test('vite builds the app with no warning, emits the four wasm builds and no node: import', async () => {
    expect(viteWarnings).toEqual([]);
    const assets = await readdir(join(outDir, 'assets'));
    for (const v of ['relaxed-mt', 'simd-mt', 'relaxed-st', 'simd-st']) expect(assets.some((f) => f.startsWith(`attend-${v}`) && f.endsWith('.wasm'))).toBe(true);
    const js = assets.filter((f) => f.endsWith('.js'));
    expect(js.length).toBeGreaterThan(0);
    for (const f of js) expect(await readFile(join(outDir, 'assets', f), 'utf8')).not.toMatch(/(from\s*|import\s*\(\s*)["']node:/);
  });

  test('esbuild bundles it for the browser with no warning and no node: import', async () => {
    const esbuild = await import('esbuild');
    const result = await esbuild.build({
      entryPoints: [join(appDir, 'main.ts')], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent',
      absWorkingDir: appDir,
    });
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(result.outputFiles[0]!.text).not.toMatch(/(from\s*|import\s*\(\s*)["']node:/);
  });
});

describe('in headless Chromium', () => {
  type Browser = Awaited<ReturnType<typeof import('puppeteer-core').launch>>;
  let browser: Browser;
  const servers: Server[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium), as .ci/run does`);
    const puppeteer = await import('puppeteer-core');
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: await mkdtemp(join(work, 'profile-')),
      // WebGPU on SwiftShader (the CPU): the flags of ../shared/notes/PLATFORM.md.
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
        '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    for (const s of servers) s.close();
  });

  /** Opens `url`, runs the app's checks, and checks their results against PyTorch's. */
  async function checkPage(url: string, isolated: boolean, device: 'wasm' | 'webgpu'): Promise<void> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction('typeof window.runChecks === "function"', { timeout: 30_000 });
    // A string, not a function: vitest would rewrite a function's import() for Node.
    const r = (await page.evaluate(`window.runChecks('${device}')`)) as Record<string, unknown>;
    await page.close();
    expect(errors).toEqual([]);
    expect(r['isolated']).toBe(isolated);
    expect(r['device']).toBe(device);
    if (device === 'wasm') {
      // The first start pointed at a folder without the .wasm files: a clear error, then a retry that works.
      expect(r['badStart']).toMatch(/wasm backend: cannot fetch .*\/no-such-folder\/attend-.*\.wasm \((HTTP 404|the server sent an HTML page: no such file)\)/);
      expect(r['variant']).toMatch(isolated ? /-mt$/ : /-st$/);
      if (isolated) expect(r['threads']).toBeGreaterThan(1);
      else expect(r['threads']).toBe(1);
    } else {
      expect(r['adapter']).toMatch(/swiftshader/i);
    }
    expect(r['logitsMaxDiff']).toBeLessThan(1e-4);
    expect(r['droppedMaxDiff']).toBeLessThan(1e-4);
    expect(r['greedy']).toEqual(r['greedyRef']);
    const losses = r['losses'] as number[];
    expect(losses).toHaveLength(10);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[9]!).toBeLessThan(losses[0]! * 0.9);
    expect(r['adapterFiles']).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    expect(r['adapted']).toBe(2);
  }

  for (const isolated of [true, false]) {
    test(`the vite build, ${isolated ? 'cross-origin isolated: threaded wasm' : 'not isolated: one thread'}; logits, greedy tokens, training, files in memory`, async () => {
      const { server, url } = await serve(isolated);
      servers.push(server);
      await checkPage(url, isolated, 'wasm');
    }, 60_000);
  }

  test('webgpu (SwiftShader): logits, greedy tokens, training, files in memory', async () => {
    const { server, url } = await serve(false);
    servers.push(server);
    await checkPage(url, false, 'webgpu');
  }, 120_000);
});
