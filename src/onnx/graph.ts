// A small ONNX graph builder: named inputs with dynamic dims, initializers from our Tensors, nodes, outputs; serialized by proto.ts.
//
// Usage:
//   const g = new OnnxGraph('gpt2', { opset: 17 });
//   const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
//   const wte = g.weight('transformer.wte.weight', model.transformer.wte.weight);   // read at build time
//   const x = g.op('Gather', [wte, ids], { axis: 0 });                               // one output: its name
//   const [a, b] = g.node('Split', [x, g.constInt64([32, 32])], { axis: -1 }, { outputs: 2 });
//   const y = g.linear(x, lin.weight, lin.bias);                                    // nn.Linear: x W^T + b
//   g.output(y, 'logits', 'float32', ['batch_size', 'sequence_length', 512]);
//   const bytes = await g.toBytes();                                                 // or (await g.build()).chunks
// Names are unique within the graph (a clash throws); node outputs get fresh names `<op>_<n>` unless named.
// Weights are exported as float32 whatever their dtype (half models too): ONNX Runtime's CPU kernels want float32.

import type { Tensor } from '../tensor/tensor.js';
import { DataType, externalTensorProto, graphProto, modelProto, nodeProto, tensorProto, valueInfoProto, type AttrValue, type DataTypeCode, type Dim, type Msg } from './proto.js';

export type { Dim } from './proto.js';
export type OnnxType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8';

const TYPE_CODES: Record<OnnxType, DataTypeCode> = {
  float32: DataType.FLOAT, float16: DataType.FLOAT16, int64: DataType.INT64, int32: DataType.INT32, bool: DataType.BOOL, uint8: DataType.UINT8,
};

/** Element data for an initializer; float32 values go in a Float32Array, int64 ones in a BigInt64Array. */
export type InitData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

interface PendingWeight {
  name: string;
  tensor: Tensor;
  /** Rewrites the float32 values and dims before writing (a transpose). */
  transform?: (data: Float32Array, dims: number[]) => { data: Float32Array; dims: number[] };
}

export interface NodeOptions {
  /** How many outputs (fresh names), or their names. Default 1. */
  outputs?: number | readonly string[];
  name?: string;
  domain?: string;
}

export interface BuildOptions {
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Readonly<Record<string, string>>;
}

function rawBytes(a: InitData): Uint8Array {
  // Typed arrays are little-endian on every platform Node runs on, which is ONNX's raw_data order.
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** [rows, cols] -> [cols, rows]. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

export class OnnxGraph {
  readonly opset: number;
  private readonly names = new Set<string>();
  private readonly nodes: Msg[] = [];
  private readonly inputs: Msg[] = [];
  private readonly outputs: Msg[] = [];
  private readonly inputList: string[] = [];
  private readonly outputList: string[] = [];
  private readonly inits: Msg[] = [];
  private readonly pending: PendingWeight[] = [];
  /** Weights already added, by tensor and transform kind: a tied weight is stored once. */
  private readonly byTensor = new Map<Tensor, Map<string, string>>();
  private readonly consts = new Map<string, string>();
  private counter = 0;

  constructor(readonly name: string, opts: { opset?: number } = {}) {
    this.opset = opts.opset ?? 17;
    if (!Number.isInteger(this.opset) || this.opset < 17 || this.opset > 21) {
      throw new Error(`ONNX export: opset ${opts.opset} is not supported (17 to 21; LayerNormalization needs 17)`);
    }
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX graph '${this.name}': the name '${name}' is used twice`);
    this.names.add(name);
    return name;
  }

  /** A name not used yet, from a prefix. */
  fresh(prefix: string): string {
    let n: string;
    do n = `${prefix}_${this.counter++}`; while (this.names.has(n));
    return this.claim(n);
  }

  /** A graph input; string dims are dynamic (named: 'batch_size'). Returns its name. */
  input(name: string, type: OnnxType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfoProto(this.claim(name), TYPE_CODES[type], dims));
    this.inputList.push(name);
    return name;
  }

  /** Declares `value` a graph output named `name` (an Identity node renames it when the names differ). */
  output(value: string, name: string, type: OnnxType, dims: readonly Dim[] | null): string {
    if (value !== name) this.node('Identity', [value], {}, { outputs: [name] });
    this.outputs.push(valueInfoProto(name, TYPE_CODES[type], dims));
    this.outputList.push(name);
    return name;
  }

  /** The graph inputs' names, in order. */
  inputNames(): string[] {
    return [...this.inputList];
  }

  /** The graph outputs' names, in order. */
  outputNames(): string[] {
    return [...this.outputList];
  }

  /** An initializer from host data. */
  initializer(name: string, type: OnnxType, dims: readonly number[], data: InitData): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`ONNX graph: initializer '${name}' has ${data.length} values for dims [${dims.join(', ')}]`);
    this.inits.push(tensorProto({ name: this.claim(name), dataType: TYPE_CODES[type], dims, raw: rawBytes(data) }));
    return name;
  }

  /**
   * An initializer from one of our tensors (float32 in the file), read when the graph is built. `transpose` stores a
   * 2-D weight transposed ([out, in] -> [in, out], what MatMul wants for nn.Linear). The same tensor with the same
   * transform gives the same name (tied weights are stored once).
   */
  weight(name: string, t: Tensor, opts: { transpose?: boolean } = {}): string {
    const kind = opts.transpose ? 'T' : '';
    const seen = this.byTensor.get(t)?.get(kind);
    if (seen) return seen;
    if (opts.transpose && t.ndim !== 2) throw new Error(`ONNX graph: weight '${name}' must be 2-D to be transposed, got [${t.shape.join(', ')}]`);
    const transform = opts.transpose
      ? (d: Float32Array, dims: number[]) => ({ data: transpose2d(d, dims[0]!, dims[1]!), dims: [dims[1]!, dims[0]!] })
      : undefined;
    this.pending.push({ name: this.claim(name), tensor: t, transform });
    if (!this.byTensor.has(t)) this.byTensor.set(t, new Map());
    this.byTensor.get(t)!.set(kind, name);
    return name;
  }

  /** The bytes the weights from `weight()` will take in the file (float32), known before any is read. */
  weightBytes(): number {
    return this.pending.reduce((n, p) => n + 4 * p.tensor.numel(), 0);
  }

  /** A small int64 constant (shapes, axes, split sizes), shared between uses. Scalar when `values` is a number. */
  constInt64(values: number | readonly number[]): string {
    const key = `i64:${JSON.stringify(values)}`;
    const have = this.consts.get(key);
    if (have) return have;
    const arr = typeof values === 'number' ? [values] : values;
    const name = this.fresh('const_i64');
    this.inits.push(tensorProto({ name, dataType: DataType.INT64, dims: typeof values === 'number' ? [] : [arr.length], raw: rawBytes(BigInt64Array.from(arr, (v) => BigInt(v))) }));
    this.consts.set(key, name);
    return name;
  }

  /** A float32 constant (scalar when `values` is a number), shared between uses. */
  constFloat(values: number | readonly number[]): string {
    const key = `f32:${JSON.stringify(values, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))}`;
    const have = this.consts.get(key);
    if (have) return have;
    const arr = typeof values === 'number' ? [values] : values;
    const name = this.fresh('const_f32');
    this.inits.push(tensorProto({ name, dataType: DataType.FLOAT, dims: typeof values === 'number' ? [] : [arr.length], raw: rawBytes(Float32Array.from(arr)) }));
    this.consts.set(key, name);
    return name;
  }

  /** A node; returns its output names. An input '' is an omitted optional input. */
  node(op: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}, opts: NodeOptions = {}): string[] {
    const o = opts.outputs ?? 1;
    const outputs = typeof o === 'number' ? Array.from({ length: o }, () => this.fresh(op)) : o.map((n) => this.claim(n));
    for (const i of inputs) if (i !== '' && !this.names.has(i)) throw new Error(`ONNX graph '${this.name}': ${op} reads '${i}', which nothing defines`);
    this.nodes.push(nodeProto({ opType: op, inputs, outputs, attrs, name: opts.name ?? `${op}_node_${this.nodes.length}`, domain: opts.domain }));
    return outputs;
  }

  /** A node with one output: its name. */
  op(op: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}, opts: Omit<NodeOptions, 'outputs'> & { output?: string } = {}): string {
    return this.node(op, inputs, attrs, { ...opts, outputs: opts.output ? [opts.output] : 1 })[0]!;
  }

  // ---- common layers (shared by the decoder, encoder and seq2seq exporters) ----

  /** nn.Linear: x W^T + b with W [out, in] (stored transposed). */
  linear(x: string, weight: Tensor, bias: Tensor | null, name: string): string {
    const y = this.op('MatMul', [x, this.weight(`${name}.weight`, weight, { transpose: true })]);
    return bias ? this.op('Add', [y, this.weight(`${name}.bias`, bias)]) : y;
  }

  /** x W + b with W [in, out] as stored (GPT-2's Conv1D). */
  matmulAdd(x: string, weight: Tensor, bias: Tensor | null, name: string): string {
    const y = this.op('MatMul', [x, this.weight(`${name}.weight`, weight)]);
    return bias ? this.op('Add', [y, this.weight(`${name}.bias`, bias)]) : y;
  }

  /** LayerNormalization over the last axis (opset 17). */
  layerNorm(x: string, weight: Tensor, bias: Tensor | null, eps: number, name: string): string {
    const inputs = [x, this.weight(`${name}.weight`, weight)];
    if (bias) inputs.push(this.weight(`${name}.bias`, bias));
    return this.op('LayerNormalization', inputs, { axis: -1, epsilon: { float: eps } });
  }

  /** ReduceMean over the given axes, keeping them (axes an attribute before opset 18, an input from 18). */
  reduceMean(x: string, axes: readonly number[]): string {
    return this.opset >= 18 ? this.op('ReduceMean', [x, this.constInt64(axes)], { keepdims: 1 }) : this.op('ReduceMean', [x], { axes, keepdims: 1 });
  }

  /** GELU: exact (erf) or tanh-approximated, composed from primitives (Gelu is an op only from opset 20). */
  gelu(x: string, approximate: 'none' | 'tanh' = 'none'): string {
    const half = this.op('Mul', [x, this.constFloat(0.5)]);
    let inner: string;
    if (approximate === 'tanh') {
      // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
      const x3 = this.op('Mul', [this.op('Mul', [x, x]), x]);
      const u = this.op('Mul', [this.op('Add', [x, this.op('Mul', [x3, this.constFloat(0.044715)])]), this.constFloat(Math.sqrt(2 / Math.PI))]);
      inner = this.op('Tanh', [u]);
    } else {
      // 0.5 x (1 + erf(x / sqrt(2)))
      inner = this.op('Erf', [this.op('Mul', [x, this.constFloat(Math.SQRT1_2)])]);
    }
    return this.op('Mul', [half, this.op('Add', [inner, this.constFloat(1)])]);
  }

  /** An activation by Hugging Face's name; an unknown one names itself and the module. */
  activation(x: string, name: string, module: string): string {
    switch (name) {
      case 'gelu': return this.gelu(x);
      case 'gelu_new':
      case 'gelu_pytorch_tanh': return this.gelu(x, 'tanh');
      case 'relu': return this.op('Relu', [x]);
      case 'silu':
      case 'swish': return this.op('Mul', [x, this.op('Sigmoid', [x])]);
      case 'tanh': return this.op('Tanh', [x]);
      default: throw new Error(`ONNX export: activation '${name}' in ${module} is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, silu, tanh)`);
    }
  }

  // ---- serialization ----

  /** Reads the pending weights and encodes the ModelProto (chunks: write them in order for the file). */
  async build(opts: BuildOptions = {}): Promise<Msg> {
    return (await this.encode(null, opts)).model;
  }

  /**
   * The ModelProto with the weights (from `weight()`) in a separate file named `location`, next to the model file
   * (ONNX external data: models over protobuf's 2 GB). `data` is that file's chunks, each weight 64-byte aligned;
   * small constants stay inline.
   */
  buildWithExternalData(location: string, opts: BuildOptions = {}): Promise<{ model: Msg; data: Uint8Array[] }> {
    return this.encode(location, opts) as Promise<{ model: Msg; data: Uint8Array[] }>;
  }

  private async encode(location: string | null, opts: BuildOptions): Promise<{ model: Msg; data: Uint8Array[] | null }> {
    if (this.outputs.length === 0) throw new Error(`ONNX graph '${this.name}': no outputs`);
    const weights: Msg[] = [];
    const data: Uint8Array[] | null = location !== null ? [] : null;
    let offset = 0;
    for (const p of this.pending) {
      const read = await p.tensor.data();
      let values = read instanceof Float32Array ? read : Float32Array.from(read as ArrayLike<number>);
      let dims = [...p.tensor.shape];
      if (p.transform) ({ data: values, dims } = p.transform(values, dims));
      if (data) {
        const pad = (64 - (offset % 64)) % 64;
        if (pad) data.push(new Uint8Array(pad));
        offset += pad;
        weights.push(externalTensorProto({ name: p.name, dataType: DataType.FLOAT, dims, location: location!, offset, length: values.byteLength }));
        data.push(rawBytes(values));
        offset += values.byteLength;
      } else {
        weights.push(tensorProto({ name: p.name, dataType: DataType.FLOAT, dims, raw: rawBytes(values) }));
      }
    }
    const graph = graphProto({ name: this.name, nodes: this.nodes, initializers: [...weights, ...this.inits], inputs: this.inputs, outputs: this.outputs });
    const model = modelProto({
      graph, opset: this.opset, producerName: opts.producerName ?? 'attend', producerVersion: opts.producerVersion, docString: opts.docString, metadata: opts.metadata,
    });
    return { model, data };
  }

  /** The model file's bytes. */
  async toBytes(opts: BuildOptions = {}): Promise<Uint8Array> {
    return (await this.build(opts)).toBytes();
  }
}
