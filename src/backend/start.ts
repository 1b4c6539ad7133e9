// Starting a backend once per process: the first call's start is shared by every later call, and forgotten if it fails.

import { registerBackend, setDefaultDevice, type Backend } from '../tensor/backend.js';

/**
 * A function that starts a backend with `create` once and registers it as a device; each call may make it the default
 * device. Options after the first successful start are ignored; a failed start (a missing file, no adapter) is
 * forgotten, so the next call tries again.
 */
export function startOnce<B extends Backend, O>(create: (opts: O) => Promise<B>): (opts: O, setDefault: boolean) => Promise<B> {
  let started: Promise<B> | null = null;
  return (opts, setDefault) => {
    started ??= create(opts).then((backend) => {
      registerBackend(backend);
      return backend;
    }, (e: unknown) => {
      started = null;
      throw e;
    });
    return started.then((backend) => {
      if (setDefault) setDefaultDevice(backend.name);
      return backend;
    });
  };
}
