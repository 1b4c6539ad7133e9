// A minimal protobuf writer for the ONNX messages an exporter needs (ModelProto and what it contains); no dependency.
//
// Usage (graph.ts does this for you; use it directly only for a message graph.ts lacks):
//   const t = tensorProto({ name: 'w', dataType: DataType.FLOAT, dims: [2, 3], raw: bytes });
//   const bytes = modelProto({ graph: graphProto({ name: 'g', nodes, initializers: [t], inputs, outputs }), opset: 17 }).toBytes();
// Every builder returns a `Msg`: the encoded message as a list of chunks, so that nesting a 500 MB initializer into
// the graph and the graph into the model copies nothing until `toBytes()` (or a file write over `chunks`).
//
// Field numbers: onnx/onnx.proto3 (onnx 1.16). Wire format: https://protobuf.dev/programming-guides/encoding/.

/** TensorProto.DataType. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11, BFLOAT16: 16 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType. */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

const utf8 = new TextEncoder();

/** An encoded message: its chunks in order and their total length. */
export class Msg {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  private varint(v: number | bigint): void {
    // Negative int64 values take ten bytes (two's complement), as protobuf encodes them.
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    while (x >= 0x80n) {
      out.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    out.push(Number(x));
    this.push(Uint8Array.from(out));
  }

  private tag(field: number, wire: 0 | 1 | 2 | 5): void {
    this.varint((field << 3) | wire);
  }

  /** A varint field (int32, int64, enum, bool); skipped when undefined. */
  int(field: number, v: number | bigint | undefined): this {
    if (v === undefined) return this;
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Error(`onnx proto: field ${field} must be an integer, got ${v}`);
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  /** A float field (fixed32). */
  float(field: number, v: number | undefined): this {
    if (v === undefined) return this;
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  /** A length-delimited field: a string, bytes, or a nested message. */
  ld(field: number, v: string | Uint8Array | Msg | undefined): this {
    if (v === undefined) return this;
    this.tag(field, 2);
    if (v instanceof Msg) {
      this.varint(v.length);
      for (const c of v.chunks) this.push(c);
    } else {
      const b = typeof v === 'string' ? utf8.encode(v) : v;
      this.varint(b.length);
      this.push(b);
    }
    return this;
  }

  /** A repeated varint field, packed (proto3's default, which ONNX Runtime reads). */
  packedInts(field: number, vs: readonly (number | bigint)[]): this {
    if (vs.length === 0) return this;
    const inner = new Msg();
    for (const v of vs) inner.varint(v);
    return this.ld(field, inner);
  }

  /** A repeated float field, packed. */
  packedFloats(field: number, vs: readonly number[]): this {
    if (vs.length === 0) return this;
    const b = new Uint8Array(4 * vs.length);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => dv.setFloat32(4 * i, v, true));
    return this.ld(field, b);
  }

  /** The message as one buffer. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

// ---- messages ----

export interface TensorProtoInit {
  name: string;
  dataType: DataTypeCode;
  dims: readonly number[];
  /** Little-endian element bytes (raw_data). */
  raw: Uint8Array;
}

/** TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9. */
export function tensorProto(t: TensorProtoInit): Msg {
  return new Msg().packedInts(1, t.dims).int(2, t.dataType).ld(8, t.name).ld(9, t.raw);
}

/**
 * A TensorProto whose data lies in another file (data_location = 14: EXTERNAL) at `offset`, `length` bytes long:
 * external_data = 13 holds the entries location / offset / length (StringStringEntryProto: key = 1, value = 2).
 */
export function externalTensorProto(t: { name: string; dataType: DataTypeCode; dims: readonly number[]; location: string; offset: number; length: number }): Msg {
  const m = new Msg().packedInts(1, t.dims).int(2, t.dataType).ld(8, t.name);
  for (const [k, v] of [['location', t.location], ['offset', String(t.offset)], ['length', String(t.length)]] as const) m.ld(13, new Msg().ld(1, k).ld(2, v));
  return m.int(14, 1);
}

/** A dimension: a fixed size, or a named dynamic one ('batch_size'). */
export type Dim = number | string;

/** ValueInfoProto with a tensor type: name = 1, type = 2 (TypeProto.tensor_type = 1: elem_type = 1, shape = 2). */
export function valueInfoProto(name: string, elemType: DataTypeCode, dims: readonly Dim[] | null): Msg {
  const tensorType = new Msg().int(1, elemType);
  if (dims) {
    const shape = new Msg();
    // TensorShapeProto.dim = 1; Dimension: dim_value = 1, dim_param = 2.
    for (const d of dims) shape.ld(1, typeof d === 'number' ? new Msg().int(1, d) : new Msg().ld(2, d));
    tensorType.ld(2, shape);
  }
  return new Msg().ld(1, name).ld(2, new Msg().ld(1, tensorType));
}

/** An attribute value: number (int if integral and `ints` hint absent, see attributeProto), string, number[], or a tensor. */
export type AttrValue = number | string | readonly number[] | readonly string[] | { float: number } | { floats: readonly number[] } | { tensor: TensorProtoInit };

/**
 * AttributeProto: name = 1, f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8, strings = 9, type = 20.
 * A plain number is an INT when integral, a FLOAT otherwise; `{ float: 1 }` forces a FLOAT (epsilon = 1 would
 * otherwise be an INT), `{ floats }` a FLOATS; a number array is INTS.
 */
export function attributeProto(name: string, v: AttrValue): Msg {
  const m = new Msg().ld(1, name);
  if (typeof v === 'number') return Number.isInteger(v) ? m.int(3, v).int(20, AttrType.INT) : m.float(2, v).int(20, AttrType.FLOAT);
  if (typeof v === 'string') return m.ld(4, v).int(20, AttrType.STRING);
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'string')) {
      for (const s of v as readonly string[]) m.ld(9, s);
      return m.int(20, AttrType.STRINGS);
    }
    return m.packedInts(8, v as readonly number[]).int(20, AttrType.INTS);
  }
  if ('float' in v) return m.float(2, v.float).int(20, AttrType.FLOAT);
  if ('floats' in v) return m.packedFloats(7, v.floats).int(20, AttrType.FLOATS);
  if ('tensor' in v) return m.ld(5, tensorProto(v.tensor)).int(20, AttrType.TENSOR);
  throw new Error(`onnx proto: attribute ${name} has an unsupported value ${JSON.stringify(v)}`);
}

export interface NodeProtoInit {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  domain?: string;
  attrs?: Readonly<Record<string, AttrValue>>;
}

/** NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7. */
export function nodeProto(n: NodeProtoInit): Msg {
  const m = new Msg();
  for (const i of n.inputs) m.ld(1, i);
  for (const o of n.outputs) m.ld(2, o);
  m.ld(3, n.name).ld(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs ?? {})) m.ld(5, attributeProto(k, v));
  return m.ld(7, n.domain);
}

export interface GraphProtoInit {
  name: string;
  nodes: readonly Msg[];
  initializers: readonly Msg[];
  inputs: readonly Msg[];
  outputs: readonly Msg[];
  valueInfo?: readonly Msg[];
}

/** GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12, value_info = 13. */
export function graphProto(g: GraphProtoInit): Msg {
  const m = new Msg();
  for (const n of g.nodes) m.ld(1, n);
  m.ld(2, g.name);
  for (const t of g.initializers) m.ld(5, t);
  for (const i of g.inputs) m.ld(11, i);
  for (const o of g.outputs) m.ld(12, o);
  for (const v of g.valueInfo ?? []) m.ld(13, v);
  return m;
}

export interface ModelProtoInit {
  graph: Msg;
  /** The default-domain opset version (17: LayerNormalization exists). */
  opset: number;
  /** ONNX IR version; 8 goes with opsets up to 18 (onnx/docs/Versioning.md). */
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  /** metadata_props: free key / value strings. */
  metadata?: Readonly<Record<string, string>>;
}

/** ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, doc_string = 6, graph = 7, opset_import = 8, metadata_props = 14. */
export function modelProto(p: ModelProtoInit): Msg {
  const m = new Msg().int(1, p.irVersion ?? (p.opset <= 18 ? 8 : p.opset <= 20 ? 9 : 10)).ld(2, p.producerName).ld(3, p.producerVersion).ld(6, p.docString);
  m.ld(7, p.graph);
  // OperatorSetIdProto: domain = 1 (empty: the default ai.onnx domain), version = 2.
  m.ld(8, new Msg().ld(1, '').int(2, p.opset));
  // StringStringEntryProto: key = 1, value = 2.
  for (const [k, v] of Object.entries(p.metadata ?? {})) m.ld(14, new Msg().ld(1, k).ld(2, v));
  return m;
}
