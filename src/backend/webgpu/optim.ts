// WGSL fused optimizer steps: Adam / AdamW and SGD (PyTorch's order of operations, see AdamStepParams).
//
// The constants are the CPU backend's (adamConstants; SGD's rounded alike), computed in float32 on the host and
// passed as f32 parameters; each f32 operation below is one rounded step of ../cpu/optim.ts, in the same order.
// Missing state (first step) reads a zero from the parameter block rather than a literal, so that the compiler
// cannot fold 0 * b + x into x (which differs for x = -0).

import type { AdamStepParams, SgdStepParams } from '../../tensor/backend.js';
import { adamConstants } from '../cpu/optim.js';
import type { GpuBuffer, GpuContext } from './context.js';

type B = GpuBuffer;

function checkFloat32(op: string, ...bufs: (B | null)[]): void {
  for (const b of bufs) if (b && b.dtype !== 'float32') throw new Error(`webgpu ${op}: expected float32 buffers, got ${b.dtype}`);
}

const HEAD = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= pu(0u)) { return; }`;

/**
 * Adam kernel source. weightDecay: 0 none, 1 decoupled (AdamW), 2 L2. Params: n, zero, decay, b1, nb1, b2, nb2, bc2,
 * eps, stepSize (f32 from slot 1). Bindings: param, grad, [expAvg, expAvgSq,] outParam, outExpAvg, outExpAvgSq.
 */
function adamSource(weightDecay: 0 | 1 | 2, moments: boolean): string {
  let b = 1;
  const bind = (name: string, access: 'read' | 'read_write'): string => `@group(0) @binding(${b++}) var<storage, ${access}> ${name}: array<f32>;\n`;
  const bindings = bind('param', 'read') + bind('grad', 'read') + (moments ? bind('m0', 'read') + bind('v0', 'read') : '') +
    bind('po', 'read_write') + bind('mo', 'read_write') + bind('vo', 'read_write');
  return /* wgsl */ `${bindings}${HEAD}
  let zero = pf(1u); let decay = pf(2u); let b1 = pf(3u); let nb1 = pf(4u); let b2 = pf(5u); let nb2 = pf(6u);
  let bc2 = pf(7u); let eps = pf(8u); let stepSize = pf(9u);
  var p = param[i];
  var g = grad[i];
  ${weightDecay === 1 ? 'p = p * decay;' : weightDecay === 2 ? 'g = g + p * decay;' : ''}
  let m = ${moments ? 'm0[i]' : 'zero'} * b1 + g * nb1;
  let v = ${moments ? 'v0[i]' : 'zero'} * b2 + (g * nb2) * g;
  let denom = sqrt(v) / bc2 + eps;
  po[i] = p + (m * stepSize) / denom;
  mo[i] = m;
  vo[i] = v;
}
`;
}

export function adamStep(ctx: GpuContext, param: B, grad: B, expAvg: B | null, expAvgSq: B | null, p: AdamStepParams): { param: B; expAvg: B; expAvgSq: B } {
  checkFloat32('adamStep', param, grad, expAvg, expAvgSq);
  if ((expAvg === null) !== (expAvgSq === null)) throw new Error('webgpu adamStep: expAvg and expAvgSq must both be given or both be null');
  const c = adamConstants(p, 'float32');
  const n = param.size;
  const out = { param: ctx.alloc('float32', n), expAvg: ctx.alloc('float32', n), expAvgSq: ctx.alloc('float32', n) };
  const wd = p.weightDecay === 0 ? 0 : p.decoupled ? 1 : 2;
  const moments = expAvg !== null && expAvgSq !== null ? [expAvg, expAvgSq] : [];
  const f = (v: number) => ({ f32: v });
  ctx.run(adamSource(wd, moments.length > 0), [n, f(0), f(c.decay), f(c.b1), f(c.nb1), f(c.b2), f(c.nb2), f(c.bc2), f(c.eps), f(c.stepSize)],
    [param, grad, ...moments, out.param, out.expAvg, out.expAvgSq], ctx.groups1d(n));
  return out;
}

/** SGD kernel source. Params: n, wd, mom, damp, lr (f32 from slot 1). Bindings: param, grad, [buf,] outParam, [outBuf]. */
function sgdSource(weightDecay: boolean, momentum: boolean, hasBuffer: boolean, nesterov: boolean): string {
  let b = 1;
  const bind = (name: string, access: 'read' | 'read_write'): string => `@group(0) @binding(${b++}) var<storage, ${access}> ${name}: array<f32>;\n`;
  const bindings = bind('param', 'read') + bind('grad', 'read') + (momentum && hasBuffer ? bind('b0', 'read') : '') +
    bind('po', 'read_write') + (momentum ? bind('bo', 'read_write') : '');
  const step = momentum ? /* wgsl */ `
  let b = ${hasBuffer ? 'b0[i] * mom + d * damp' : 'd'};
  bo[i] = b;
  d = ${nesterov ? 'd + b * mom' : 'b'};` : '';
  return /* wgsl */ `${bindings}${HEAD}
  let wd = pf(1u); let mom = pf(2u); let damp = pf(3u); let lr = pf(4u);
  let p = param[i];
  var d = grad[i];
  ${weightDecay ? 'd = d + p * wd;' : ''}${step}
  po[i] = p + d * lr;
}
`;
}

export function sgdStep(ctx: GpuContext, param: B, grad: B, momentumBuffer: B | null, p: SgdStepParams): { param: B; momentumBuffer: B | null } {
  checkFloat32('sgdStep', param, grad, momentumBuffer);
  const R = Math.fround;
  const n = param.size;
  const momentum = p.momentum !== 0;
  const out = { param: ctx.alloc('float32', n), momentumBuffer: momentum ? ctx.alloc('float32', n) : null };
  const f = (v: number) => ({ f32: v });
  const inputs = momentum && momentumBuffer ? [param, grad, momentumBuffer] : [param, grad];
  const outputs = out.momentumBuffer ? [out.param, out.momentumBuffer] : [out.param];
  ctx.run(sgdSource(p.weightDecay !== 0, momentum, inputs.length === 3, p.nesterov),
    [n, f(R(p.weightDecay)), f(R(p.momentum)), f(R(1 - p.dampening)), f(R(-p.lr))], [...inputs, ...outputs], ctx.groups1d(n));
  return out;
}
