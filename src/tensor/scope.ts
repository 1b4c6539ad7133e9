// Memory scopes: `tidy(fn)` disposes every tensor made inside fn except what fn returns or `keep`s.

/** What a scope needs of a tensor (kept structural so this file does not import tensor.ts). */
export interface Disposable {
  dispose(): void;
  /** Called when no open scope owns it any more (it outlived them, or keep() took it out). */
  unscoped?(): void;
}

const scopes: Set<Disposable>[] = [];

/** Called by every new tensor: the innermost open scope owns it. Returns whether one does. */
export function track(t: Disposable): boolean {
  const s = scopes[scopes.length - 1];
  s?.add(t);
  return s !== undefined;
}

/** Removes a tensor from every open scope so that it outlives them (parameters, gradients, optimizer state). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  t.unscoped?.();
  return t;
}

/** Adds to `out` the members of `scope` found in value (a tensor, or arrays / plain objects / Maps of them). */
function collect(value: unknown, scope: Set<Disposable>, out: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (scope.has(value as Disposable)) out.add(value as Disposable);
  if (Array.isArray(value)) for (const v of value) collect(v, scope, out, seen);
  else if (value instanceof Map) for (const v of value.values()) collect(v, scope, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, scope, out, seen);
}

/** Closes `scope` (wherever it sits in the stack: async scopes may end out of order) and disposes what it owns but `result` holds. */
function close<T>(scope: Set<Disposable>, result: T): T {
  const at = scopes.lastIndexOf(scope);
  if (at >= 0) scopes.splice(at, 1);
  const kept = new Set<Disposable>();
  collect(result, scope, kept, new Set());
  const parent = scopes[at - 1];
  for (const t of scope) {
    if (!kept.has(t)) t.dispose();
    else if (parent) parent.add(t);
    else t.unscoped?.();
  }
  return result;
}

function abandon(scope: Set<Disposable>): void {
  const at = scopes.lastIndexOf(scope);
  if (at >= 0) scopes.splice(at, 1);
  for (const t of scope) t.dispose();
}

/**
 * Runs fn and disposes every tensor created during it, except the tensors found in its result
 * (a tensor, or arrays / plain objects / Maps holding tensors), which move to the enclosing scope.
 * fn may be async (then tidy returns a Promise): the scope stays open until it settles, so tensors made by
 * other work running concurrently in that time are owned (and disposed) by it too; keep() protects them.
 */
export function tidy<T>(fn: () => Promise<T>): Promise<T>;
export function tidy<T>(fn: () => T): T;
export function tidy<T>(fn: () => T | Promise<T>): T | Promise<T> {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T | Promise<T>;
  try {
    result = fn();
  } catch (e) {
    abandon(scope);
    throw e;
  }
  if (result instanceof Promise) {
    return result.then((r) => close(scope, r), (e: unknown) => {
      abandon(scope);
      throw e;
    });
  }
  return close(scope, result);
}
