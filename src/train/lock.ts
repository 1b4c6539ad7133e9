// Output-folder locks: one run writes a folder at a time; a lock left by a killed run is detected and taken over.
//
// The lock is a file, .attend.lock, holding its owner's PID, host, start time and command. It is created whole and
// atomically (written to a temporary file, then hard-linked into place, which fails if a lock exists), so a reader
// never sees half a lock. A lock whose process is gone (no such PID, a zombie, or a PID reused by a process that
// started later) is stale: the next run moves it aside and takes the folder, saying so.

import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { link, mkdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const LOCK_FILE = '.attend.lock';

/** What a lock file records about the run holding it. */
export interface LockOwner {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  startedAt: string;
  command: string;
  /** The process's start time in clock ticks since boot (Linux /proc), to tell a reused PID from its owner. */
  procStart: number | null;
}

/** A held lock; release() removes it (and the folder, when the lock created it and it is still empty); a second call does nothing. */
export interface DirLock {
  readonly dir: string;
  readonly path: string;
  release(): Promise<void>;
}

interface Held {
  count: number;
  createdDir: boolean;
}

// Locks this process holds, by absolute folder: the lock is re-entrant within a process, so that a recipe holding its
// --out folder can run a Trainer that writes there too.
const held = new Map<string, Held>();

/** Fields 3 (state) and 22 (start time) of /proc/<pid>/stat, or null where /proc is not available. */
function procStat(pid: number): { state: string; start: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const start = Number(rest[19]);
  return { state: rest[0] ?? '', start: Number.isFinite(start) ? start : -1 };
}

function ownInfo(): LockOwner {
  return {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    command: process.argv.join(' '),
    procStart: procStat(process.pid)?.start ?? null,
  };
}

function parseOwner(text: string): LockOwner | null {
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    if (typeof v !== 'object' || v === null || !Number.isSafeInteger(v.pid) || (v.pid as number) <= 0) return null;
    return {
      pid: v.pid as number,
      host: typeof v.host === 'string' ? v.host : '?',
      startedAt: typeof v.startedAt === 'string' ? v.startedAt : '?',
      command: typeof v.command === 'string' ? v.command : '?',
      procStart: typeof v.procStart === 'number' ? v.procStart : null,
    };
  } catch {
    return null;
  }
}

/** Why a lock's owner is known to be gone, or null when it may still be running. */
function staleReason(owner: LockOwner): string | null {
  if (owner.host !== hostname()) return null; // another machine's process cannot be checked from here
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return `process ${owner.pid} no longer exists`;
    // EPERM: it exists and belongs to another user.
  }
  const s = procStat(owner.pid);
  if (s === null) return null;
  if (s.state === 'Z' || s.state === 'X') return `process ${owner.pid} has exited`;
  if (owner.procStart !== null && s.start !== owner.procStart) return `PID ${owner.pid} now belongs to another process`;
  return null;
}

const describeOwner = (o: LockOwner): string => `PID ${o.pid} on ${o.host} (started ${o.startedAt}, command: ${o.command})`;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * Locks `dir` for this run (creating it if needed). Throws at once, naming the holder, when another live process holds
 * it; takes over a stale lock (its process is gone) after telling `log`. Within one process the lock is re-entrant.
 */
export async function lockDir(dir: string, opts: { log?: (line: string) => void } = {}): Promise<DirLock> {
  const abs = resolve(dir);
  const path = join(abs, LOCK_FILE);
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return; // a second release of one handle must not release another holder's count
    released = true;
    const h = held.get(abs);
    if (!h) return;
    if (--h.count > 0) return;
    held.delete(abs);
    const current = parseOwner(await readFile(path, 'utf8').catch(() => ''));
    if (current?.pid === process.pid) await rm(path, { force: true });
    if (h.createdDir) await rmdir(abs).catch(() => undefined); // only if still empty: nothing was written
  };
  const lock: DirLock = { dir, path, release };
  const mine = held.get(abs);
  if (mine) {
    mine.count++;
    return lock;
  }

  const createdDir = !(await exists(abs));
  await mkdir(abs, { recursive: true });
  const me = ownInfo();
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(me)}\n`);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, path);
        held.set(abs, { count: 1, createdDir });
        return lock;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 5) throw e;
      }
      const text = await readFile(path, 'utf8').catch(() => null);
      if (text === null) continue; // released meanwhile: try again
      const owner = parseOwner(text);
      const reason = owner ? staleReason(owner) : 'the lock file is unreadable';
      if (owner && reason === null) {
        throw new Error(`${dir} is in use by another run: ${describeOwner(owner)} holds ${path}. `
          + 'Wait for it to end, or choose another output folder (if that process is really gone, delete the lock file).');
      }
      // Move the stale lock aside (atomic: of two runs taking it over, one wins the rename), then check that what was
      // moved is the lock judged stale, not a fresh one another run took meanwhile.
      const aside = `${path}.stale-${process.pid}`;
      try {
        await rename(path, aside);
      } catch {
        continue;
      }
      const moved = await readFile(aside, 'utf8').catch(() => null);
      if (moved !== text) {
        await link(aside, path).catch(() => undefined);
        await rm(aside, { force: true });
        continue;
      }
      await rm(aside, { force: true });
      opts.log?.(`${dir}: took over a stale lock (${reason}${owner ? `; it was held by ${describeOwner(owner)}` : ''})`);
    }
  } finally {
    await rm(tmp, { force: true });
  }
}
