// Output-folder locks against a real second process (spawned node with tsx): refused at once naming the holder's PID;
// taken over after kill -9 and from fake stale locks (dead PID, reused PID, garbage); re-entrant within a process.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { LOCK_FILE, lockDir } from './lock.js';

const LOCK_TS = fileURLToPath(new URL('./lock.ts', import.meta.url));

const dirs: string[] = [];
const children: ChildProcess[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'attend-lock-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A second node process that locks `dir` and then waits until killed; resolves once it holds the lock. */
async function holder(dir: string): Promise<ChildProcess> {
  const code = `const { lockDir } = await import(${JSON.stringify(LOCK_TS)}); await lockDir(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('locked')) resolve(); });
    child.on('exit', (c) => reject(new Error(`the holder exited (${c}) before locking: ${err}`)));
  });
  return child;
}

/** A PID that no process has: one of a child that has exited and been reaped. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('lockDir', () => {
  test('a second process is refused at once with the holder\'s PID; after kill -9 its stale lock is taken over', async () => {
    const dir = join(tmp(), 'run');
    const child = await holder(dir);
    const owner = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number; command: string };
    expect(owner.pid).toBe(child.pid);
    const t0 = performance.now();
    const refused = await lockDir(dir).then(() => '', (e: Error) => e.message);
    expect(refused).toMatch(new RegExp(`^${dir} is in use by another run: PID ${child.pid} on ${hostname()} \\(started \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, command: `));
    expect(refused).toContain(`command: ${process.execPath}) holds ${join(dir, LOCK_FILE)}.`);
    expect(performance.now() - t0).toBeLessThan(3000); // at once: no waiting for the holder

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const messages: string[] = [];
    const lock = await lockDir(dir, { log: (l) => messages.push(l) });
    expect(messages).toEqual([expect.stringMatching(new RegExp(`took over a stale lock \\(process ${child.pid} no longer exists; it was held by PID ${child.pid}`))]);
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    await lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    expect(readdirSync(dir)).toEqual([]); // no temporary or moved-aside files left
  }, 30_000);

  test('fake stale locks: a dead PID, a PID reused by a later process, an unreadable file; another host is refused', async () => {
    const dir = tmp();
    const lockPath = join(dir, LOCK_FILE);
    const fake = (o: Record<string, unknown>) => writeFileSync(lockPath, JSON.stringify({ host: hostname(), startedAt: '2026-01-01T00:00:00.000Z', command: 'attend train x', procStart: null, ...o }));
    const take = async (): Promise<string[]> => {
      const messages: string[] = [];
      await (await lockDir(dir, { log: (l) => messages.push(l) })).release();
      return messages;
    };
    const dead = deadPid();
    fake({ pid: dead });
    expect(await take()).toEqual([expect.stringMatching(new RegExp(`took over a stale lock \\(process ${dead} no longer exists; it was held by PID ${dead} on .* command: attend train x\\)`))]);
    if (existsSync('/proc/self/stat')) {
      // Our parent is alive, but it started long before the recorded start time: the PID was reused.
      fake({ pid: process.ppid, procStart: 1 });
      expect(await take()).toEqual([expect.stringMatching(new RegExp(`PID ${process.ppid} now belongs to another process`))]);
    }
    writeFileSync(lockPath, '{"pid": ');
    expect(await take()).toEqual([expect.stringMatching(/took over a stale lock \(the lock file is unreadable\)/)]);
    fake({ pid: dead, host: 'elsewhere' });
    await expect(lockDir(dir)).rejects.toThrow(/is in use by another run: PID \d+ on elsewhere/);
    // A live holder on this host (our parent, with no start time to compare) is respected too.
    fake({ pid: process.ppid });
    await expect(lockDir(dir)).rejects.toThrow(new RegExp(`in use by another run: PID ${process.ppid} .*if that process is really gone, delete the lock file`));
  });

  test('re-entrant within a process; release removes the lock, and the folder when the lock made it and it is empty', async () => {
    const dir = join(tmp(), 'new');
    const outer = await lockDir(dir);
    const inner = await lockDir(dir);
    await inner.release();
    await inner.release(); // twice: still the outer's
    expect(existsSync(join(dir, LOCK_FILE))).toBe(true);
    await outer.release();
    expect(existsSync(dir)).toBe(false);
    const kept = join(tmp(), 'kept');
    const l = await lockDir(kept);
    writeFileSync(join(kept, 'results.json'), '{}');
    await l.release();
    expect(readdirSync(kept)).toEqual(['results.json']);
  });
});
