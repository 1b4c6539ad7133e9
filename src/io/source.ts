// Where checkpoint files come from: a folder on disk (Node), a URL (any static server holding a Hugging Face folder),
// or files in memory (a Map or record of File / Blob / bytes: drag-and-drop, <input type=file>, fetched bytes).
//
// Loaders keep building paths as strings (`${dir}/config.json`); every read goes through readBytes / exists /
// readRange here, which decide by the path: http(s):, blob: and data: URLs are fetched (in a browser every string is
// a URL, relative ones against the page), `memory:N/` names a file of a registered in-memory folder, anything else is
// a file read through Node's fs.

import { fs, isNode } from '#platform';

/** One file's contents, as a browser or a program has it. */
export type FileData = Blob | ArrayBuffer | ArrayBufferView | string;
/** Files by name relative to the folder (`config.json`, `onnx/model.onnx`), or a FileList / File[] (their names). */
export type FileMap = Map<string, FileData> | Record<string, FileData> | Iterable<File>;
/** What `fromPretrained` and the other loaders accept. */
export type ModelSource = string | URL | FileMap;

const MEMORY = /^memory:(\d+)\/(.*)$/;
const URL_SCHEME = /^(https?|blob|data):/i;

/** In-memory folders in use, by id; each is dropped when the last load that uses it ends. */
const folders = new Map<number, { files: Map<string, FileData>; users: number }>();
const ids = new WeakMap<object, number>();
let nextId = 1;

function toFileMap(src: FileMap): Map<string, FileData> {
  if (src instanceof Map) return src;
  if (typeof (src as Iterable<File>)[Symbol.iterator] === 'function') {
    const m = new Map<string, FileData>();
    for (const f of src as Iterable<File>) {
      // A dropped folder's File has webkitRelativePath 'gpt2/config.json': keep the path below the folder.
      const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath;
      m.set(rel ? rel.slice(rel.indexOf('/') + 1) : f.name, f);
    }
    return m;
  }
  return new Map(Object.entries(src as Record<string, FileData>));
}

function isFileMap(src: unknown): src is FileMap {
  return typeof src === 'object' && src !== null && !(src instanceof URL);
}

/** The folder as a path string for loaders: the path or URL itself, or `memory:N` for files in memory. */
export async function withSource<T>(src: ModelSource, fn: (dir: string) => Promise<T>): Promise<T> {
  if (typeof src === 'string') return fn(src.replace(/[/\\]+$/, ''));
  if (src instanceof URL) return fn(src.href.replace(/\/+$/, ''));
  if (!isFileMap(src)) throw new Error(`expected a folder path, a URL or a Map / record of files, got ${src === null ? 'null' : typeof src}`);
  let id = ids.get(src);
  if (id === undefined || !folders.has(id)) {
    id = nextId++;
    ids.set(src, id);
    folders.set(id, { files: toFileMap(src), users: 0 });
  }
  const folder = folders.get(id)!;
  folder.users++;
  try {
    return await fn(`memory:${id}`);
  } finally {
    if (--folder.users === 0) folders.delete(id);
  }
}

/** A file that is not there: the code Node's fs gives, so callers test one thing. */
function notFound(path: string, why: string): Error {
  return Object.assign(new Error(`${path}: ${why}`), { code: 'ENOENT' });
}

type Where = { kind: 'memory'; data: FileData | undefined; name: string } | { kind: 'url'; url: string } | { kind: 'file'; path: string | URL };

function locate(path: string): Where {
  const m = MEMORY.exec(path);
  if (m) {
    const folder = folders.get(Number(m[1]));
    if (!folder) throw new Error(`${path}: the in-memory folder is no longer open (pass the files again)`);
    return { kind: 'memory', data: folder.files.get(m[2]!), name: m[2]! };
  }
  if (URL_SCHEME.test(path)) return { kind: 'url', url: path };
  if (isNode) return { kind: 'file', path: /^file:/i.test(path) ? new URL(path) : path };
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  return { kind: 'url', url: page ? new URL(path, page).href : path };
}

async function dataBytes(data: FileData): Promise<Uint8Array> {
  if (typeof data === 'string') return new TextEncoder().encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(await data.arrayBuffer());
}

function dataSize(data: FileData): number {
  if (typeof data === 'string') return new TextEncoder().encode(data).length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return data.size;
}

async function get(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw new Error(`${url}: cannot fetch (${(e as Error).message})`);
  }
}

/**
 * Whether a response is a missing file: 404 / 410, or an HTML page where a checkpoint file was asked for (dev servers
 * and single-page-app hosts answer unknown paths with index.html and status 200).
 */
function missing(res: Response): string | null {
  if (res.status === 404 || res.status === 410) return `not found (HTTP ${res.status})`;
  if (res.ok && /^text\/html\b/i.test(res.headers.get('content-type') ?? '')) return 'not found (the server sent an HTML page instead)';
  return null;
}

/** A whole file. A missing file throws an error with code 'ENOENT'. */
export async function readBytes(path: string): Promise<Uint8Array> {
  const w = locate(path);
  if (w.kind === 'memory') {
    if (w.data === undefined) throw notFound(path, 'not among the files given');
    return dataBytes(w.data);
  }
  if (w.kind === 'url') {
    const res = await get(w.url);
    const gone = missing(res);
    if (gone) throw notFound(path, gone);
    if (!res.ok) throw new Error(`${path}: cannot fetch (HTTP ${res.status})`);
    return new Uint8Array(await res.arrayBuffer());
  }
  return (await fs(`reading ${path}`)).readFile(w.path);
}

/** A whole file as UTF-8 text. */
export async function readText(path: string): Promise<string> {
  return new TextDecoder().decode(await readBytes(path));
}

/** Whether a file (not a folder) exists; for URLs a HEAD request that succeeds. */
export async function exists(path: string): Promise<boolean> {
  const w = locate(path);
  if (w.kind === 'memory') return w.data !== undefined;
  if (w.kind === 'url') {
    const res = await get(w.url, { method: 'HEAD' });
    return res.ok && missing(res) === null;
  }
  const { stat } = await fs(`reading ${path}`);
  return stat(w.path).then((st) => st.isFile(), () => false);
}

/** The files of a folder, when it can be listed (a folder on disk, files in memory); null for a URL. */
export async function listFolder(dir: string): Promise<string[] | null> {
  const m = /^memory:(\d+)$/.exec(dir);
  if (m) return [...(folders.get(Number(m[1]))?.files.keys() ?? [])];
  const w = locate(dir);
  if (w.kind !== 'file') return null;
  return (await fs(`listing ${dir}`)).readdir(w.path).catch(() => null);
}

/** Whether `path` is read with Node's fs (a local file), not fetched or taken from memory. */
export function isLocalFile(path: string): boolean {
  return locate(path).kind === 'file';
}

/**
 * `length` bytes from `start` (fewer at the end of the file) and the file's size, without reading the rest where
 * the source allows it: an HTTP Range request (a server that ignores Range sends the whole file), a Blob slice.
 */
export async function readRange(path: string, start: number, length: number): Promise<{ bytes: Uint8Array; size: number }> {
  const w = locate(path);
  if (w.kind === 'memory') {
    if (w.data === undefined) throw notFound(path, 'not among the files given');
    const size = dataSize(w.data);
    const end = Math.min(size, start + length);
    const bytes = w.data instanceof Blob ? new Uint8Array(await w.data.slice(start, end).arrayBuffer()) : (await dataBytes(w.data)).subarray(start, end);
    return { bytes, size };
  }
  if (w.kind === 'url') {
    const res = await get(w.url, { headers: { Range: `bytes=${start}-${start + length - 1}` } });
    const gone = missing(res);
    if (gone) throw notFound(path, gone);
    if (res.status === 416) return { bytes: new Uint8Array(0), size: Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? 0) };
    if (!res.ok) throw new Error(`${path}: cannot fetch (HTTP ${res.status})`);
    const body = new Uint8Array(await res.arrayBuffer());
    if (res.status === 206) {
      const total = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
      if (!total) throw new Error(`${path}: the server answered a Range request without the file size (Content-Range: ${res.headers.get('content-range')})`);
      return { bytes: body, size: Number(total[1]) };
    }
    return { bytes: body.subarray(start, start + length), size: body.length };
  }
  const handle = await (await fs(`reading ${path}`)).open(w.path, 'r');
  try {
    const { size } = await handle.stat();
    const bytes = new Uint8Array(Math.max(0, Math.min(length, size - start)));
    let done = 0;
    while (done < bytes.length) {
      const { bytesRead } = await handle.read(bytes, done, bytes.length - done, start + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return { bytes: bytes.subarray(0, done), size };
  } finally {
    await handle.close();
  }
}
