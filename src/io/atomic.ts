// Atomic file writes: a temporary file beside the target, flushed, then renamed over it, so that a crash or a full
// disk never leaves half a file where a whole one was.

import { fs, type FileHandle } from '#platform';

/** Writes text (UTF-8), bytes, or whatever `content(handle)` writes, to path atomically; `what` names the operation in errors. */
export async function writeFileAtomic(path: string, content: string | Uint8Array | ((handle: FileHandle) => Promise<void>), what = `writing ${JSON.stringify(path)}`): Promise<void> {
  const { open, rename, rm } = await fs(what);
  const tmp = `${path}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w');
  try {
    if (typeof content === 'function') await content(handle);
    else await handle.writeFile(content);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  await rename(tmp, path);
}
