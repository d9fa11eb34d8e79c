// An outside reader of gristmill's streams, written from docs/wire-format.md alone.
// Node.js 20, standard library only: its own RESP2 client, protobuf decoder, canonical form.
//
//   node reader.mjs [--host H] [--port P] [--prefix gm:] [--max-entry-bytes N] STREAM...
//
// Prints one JSON line per entry of each stream (XRANGE - +):
//   {"stream", "id", "kind": "protobuf"|"raw", "envelope": {...}, "dl": {...}?,
//    "schema_id"?, "recomputed_id"?, "message_name"?, "payload"? | "refused"?}
import net from "node:net";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";

// ---------------------------------------------------------------------------------------------
// RESP2 client

class Resp {
  constructor(host, port) {
    this.host = host;
    this.port = port;
    this.buffer = Buffer.alloc(0);
    this.waiting = [];
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.socket = net.createConnection({ host: this.host, port: this.port }, resolve);
      this.socket.once("error", reject);
      this.socket.on("data", (chunk) => {
        this.buffer = Buffer.concat([this.buffer, chunk]);
        this.drain();
      });
    });
  }

  close() {
    this.socket.end();
  }

  command(...args) {
    const parts = [Buffer.from(`*${args.length}\r\n`)];
    for (const arg of args) {
      const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
      parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"));
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(Buffer.concat(parts));
    });
  }

  drain() {
    while (this.waiting.length) {
      const parsed = this.parse(0);
      if (parsed === null) return;
      const [value, end] = parsed;
      this.buffer = this.buffer.subarray(end);
      const { resolve, reject } = this.waiting.shift();
      if (value instanceof RespError) reject(value);
      else resolve(value);
    }
  }

  // [value, next position] or null when incomplete
  parse(pos) {
    const buf = this.buffer;
    if (pos >= buf.length) return null;
    const eol = buf.indexOf("\r\n", pos);
    if (eol < 0) return null;
    const type = String.fromCharCode(buf[pos]);
    const line = buf.subarray(pos + 1, eol).toString("latin1");
    const next = eol + 2;
    if (type === "+") return [line, next];
    if (type === "-") return [new RespError(line), next];
    if (type === ":") return [BigInt(line), next];
    if (type === "$") {
      const length = Number(line);
      if (length < 0) return [null, next];
      if (buf.length < next + length + 2) return null;
      return [Buffer.from(buf.subarray(next, next + length)), next + length + 2];
    }
    if (type === "*") {
      const count = Number(line);
      if (count < 0) return [null, next];
      const items = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = this.parse(at);
        if (item === null) return null;
        items.push(item[0]);
        at = item[1];
      }
      return [items, at];
    }
    throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
  }
}

class RespError extends Error {}

// ---------------------------------------------------------------------------------------------
// protobuf wire reading

class WireError extends Error {
  constructor(reason, message) {
    super(message);
    this.reason = reason;
  }
}

class Reader {
  constructor(buf) {
    this.buf = buf;
    this.pos = 0;
  }

  done() {
    return this.pos >= this.buf.length;
  }

  varint() {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new WireError("decode_error", "truncated varint");
      const byte = this.buf[this.pos++];
      result |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return result & 0xffffffffffffffffn;
      shift += 7n;
    }
    throw new WireError("decode_error", "varint too long");
  }

  take(length) {
    if (length < 0 || this.pos + length > this.buf.length) {
      throw new WireError("decode_error", "truncated field");
    }
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  // one field: {number, wire, value}; value: BigInt (0, 1, 5) or Buffer (2) or Buffer (group)
  field() {
    const key = this.varint();
    const number = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (number < 1 || number > 536870911) throw new WireError("decode_error", "bad field number");
    return { number, wire, value: this.value(number, wire) };
  }

  value(number, wire) {
    if (wire === 0) return this.varint();
    if (wire === 1) return this.take(8).readBigUInt64LE(0);
    if (wire === 5) return BigInt(this.take(4).readUInt32LE(0));
    if (wire === 2) return this.take(Number(this.varint()));
    if (wire === 3) {
      const start = this.pos;
      for (;;) {
        if (this.done()) throw new WireError("decode_error", "unterminated group");
        const at = this.pos;
        const key = this.varint();
        const inner = Number(key >> 3n);
        const innerWire = Number(key & 7n);
        if (innerWire === 4) {
          if (inner !== number) throw new WireError("decode_error", "mismatched end group");
          return this.buf.subarray(start, at);
        }
        this.value(inner, innerWire);
      }
    }
    throw new WireError("decode_error", `wire type ${wire}`);
  }
}

// field number -> list of raw values, for the descriptor messages
function rawFields(buf) {
  const out = new Map();
  const reader = new Reader(buf);
  while (!reader.done()) {
    const { number, value } = reader.field();
    if (!out.has(number)) out.set(number, []);
    out.get(number).push(value);
  }
  return out;
}

const str = (m, n, dflt = "") => (m.has(n) ? m.get(n).at(-1).toString("utf8") : dflt);
const num = (m, n, dflt = 0) => (m.has(n) ? BigInt.asIntN(32, m.get(n).at(-1)) : BigInt(dflt));
const all = (m, n) => m.get(n) ?? [];
const has = (m, n) => m.has(n);

// ---------------------------------------------------------------------------------------------
// descriptors: FileDescriptorSet -> types {name -> type}

const TYPE_NAMES = {
  1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
  8: "bool", 9: "string", 10: "group", 11: "message", 12: "bytes", 13: "uint32", 14: "enum",
  15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64",
};
const LABELS = { 1: "optional", 2: "required", 3: "repeated" };

const WKT_FILES = new Set(
  ["any", "api", "descriptor", "duration", "empty", "field_mask", "source_context", "struct",
    "timestamp", "type", "wrappers"].map((n) => `google/protobuf/${n}.proto`),
);

function jsonNameOf(name) {
  // protoc's ToJsonName: drop each '_' and upper-case the letter after it
  let out = "";
  let upper = false;
  for (const c of name) {
    if (c === "_") upper = true;
    else if (upper) {
      out += c.toUpperCase();
      upper = false;
    } else out += c;
  }
  return out;
}

function parseField(buf, oneofs) {
  const m = rawFields(buf);
  const options = has(m, 8) ? rawFields(m.get(8).at(-1)) : new Map();
  const proto3Optional = has(m, 17) && m.get(17).at(-1) !== 0n;
  const oneofIndex = has(m, 9) ? Number(num(m, 9)) : null;
  const name = str(m, 1);
  return {
    name,
    number: Number(num(m, 3)),
    label: LABELS[Number(num(m, 4, 1))],
    type: TYPE_NAMES[Number(num(m, 5))],
    typeName: str(m, 6),
    default: has(m, 7) ? str(m, 7) : null,
    packed: has(options, 2) ? options.get(2).at(-1) !== 0n : null,
    proto3Optional,
    oneofIndex,
    oneof: oneofIndex !== null && !proto3Optional ? (oneofs[oneofIndex] ?? "") : "",
    jsonName: has(m, 10) ? str(m, 10) : jsonNameOf(name),
  };
}

function ranges(list) {
  return list.map((b) => {
    const r = rawFields(b);
    return [Number(num(r, 1)), Number(num(r, 2))];
  });
}

function indexMessage(buf, scope, syntax, types, counts) {
  const m = rawFields(buf);
  const name = scope ? `${scope}.${str(m, 1)}` : str(m, 1);
  const oneofs = all(m, 8).map((b) => str(rawFields(b), 1));
  const options = has(m, 7) ? rawFields(m.get(7).at(-1)) : new Map();
  const fields = all(m, 2).map((b) => parseField(b, oneofs));
  counts.fields += fields.length;
  addType(types, counts, {
    kind: "message", name, syntax, fields,
    mapEntry: has(options, 7) && options.get(7).at(-1) !== 0n,
    reservedNames: all(m, 10).map((b) => b.toString("utf8")),
    reservedRanges: ranges(all(m, 9)),
  });
  for (const nested of all(m, 3)) indexMessage(nested, name, syntax, types, counts);
  for (const nested of all(m, 4)) indexEnum(nested, name, syntax, types, counts);
}

function indexEnum(buf, scope, syntax, types, counts) {
  const m = rawFields(buf);
  const name = scope ? `${scope}.${str(m, 1)}` : str(m, 1);
  const values = all(m, 2).map((b) => {
    const v = rawFields(b);
    return { name: str(v, 1), number: Number(num(v, 2)) };
  });
  addType(types, counts, {
    kind: "enum", name, syntax, values,
    reservedNames: all(m, 5).map((b) => b.toString("utf8")),
    reservedRanges: ranges(all(m, 4)),
  });
}

function addType(types, counts, type) {
  if (types.has(type.name)) throw new WireError("schema_invalid", `${type.name} defined twice`);
  types.set(type.name, type);
  counts.types += 1;
}

const LIMITS = { recordBytes: 1 << 20, files: 64, types: 2000, fields: 20000 };

function indexFileSet(buf) {
  const types = new Map();
  const counts = { files: 0, types: 0, fields: 0 };
  for (const fileBuf of all(rawFields(buf), 1)) {
    const f = rawFields(fileBuf);
    if (WKT_FILES.has(str(f, 1))) continue;
    counts.files += 1;
    const rawSyntax = str(f, 12);
    let syntax;
    if (rawSyntax === "" || rawSyntax === "proto2") syntax = "proto2";
    else if (rawSyntax === "proto3") syntax = "proto3";
    else throw new WireError("schema_invalid", `syntax ${rawSyntax}`);
    const pkg = str(f, 2);
    for (const msg of all(f, 4)) indexMessage(msg, pkg, syntax, types, counts);
    for (const en of all(f, 5)) indexEnum(en, pkg, syntax, types, counts);
  }
  if (counts.files > LIMITS.files) throw new WireError("schema_invalid", "too many files");
  if (counts.types > LIMITS.types) throw new WireError("schema_invalid", "too many types");
  if (counts.fields > LIMITS.fields) throw new WireError("schema_invalid", "too many fields");
  return types;
}

// ---------------------------------------------------------------------------------------------
// the well-known types, the reader's own copy

function wkField(name, number, type, { label = "optional", typeName = "", oneof = "" } = {}) {
  return {
    name, number, label, type, typeName, default: null, packed: null, proto3Optional: false,
    oneofIndex: oneof ? 0 : null, oneof, jsonName: jsonNameOf(name),
  };
}

function wkMessage(name, fields, mapEntry = false) {
  return { kind: "message", name, syntax: "proto3", fields, mapEntry, reservedNames: [],
    reservedRanges: [], wellKnown: true };
}

const WELL_KNOWN = new Map();
for (const t of [
  wkMessage("google.protobuf.Timestamp", [wkField("seconds", 1, "int64"), wkField("nanos", 2, "int32")]),
  wkMessage("google.protobuf.Duration", [wkField("seconds", 1, "int64"), wkField("nanos", 2, "int32")]),
  wkMessage("google.protobuf.Empty", []),
  wkMessage("google.protobuf.FieldMask", [wkField("paths", 1, "string", { label: "repeated" })]),
  wkMessage("google.protobuf.Any", [wkField("type_url", 1, "string"), wkField("value", 2, "bytes")]),
  wkMessage("google.protobuf.Struct", [
    wkField("fields", 1, "message", { label: "repeated", typeName: "google.protobuf.Struct.FieldsEntry" }),
  ]),
  wkMessage("google.protobuf.Struct.FieldsEntry", [
    wkField("key", 1, "string"),
    wkField("value", 2, "message", { typeName: "google.protobuf.Value" }),
  ], true),
  wkMessage("google.protobuf.Value", [
    wkField("null_value", 1, "enum", { typeName: "google.protobuf.NullValue", oneof: "kind" }),
    wkField("number_value", 2, "double", { oneof: "kind" }),
    wkField("string_value", 3, "string", { oneof: "kind" }),
    wkField("bool_value", 4, "bool", { oneof: "kind" }),
    wkField("struct_value", 5, "message", { typeName: "google.protobuf.Struct", oneof: "kind" }),
    wkField("list_value", 6, "message", { typeName: "google.protobuf.ListValue", oneof: "kind" }),
  ]),
  wkMessage("google.protobuf.ListValue", [
    wkField("values", 1, "message", { label: "repeated", typeName: "google.protobuf.Value" }),
  ]),
  { kind: "enum", name: "google.protobuf.NullValue", syntax: "proto3",
    values: [{ name: "NULL_VALUE", number: 0 }], reservedNames: [], reservedRanges: [], wellKnown: true },
  ...[["Double", "double"], ["Float", "float"], ["Int64", "int64"], ["UInt64", "uint64"],
    ["Int32", "int32"], ["UInt32", "uint32"], ["Bool", "bool"], ["String", "string"],
    ["Bytes", "bytes"]].map(([n, type]) => wkMessage(`google.protobuf.${n}Value`, [wkField("value", 1, type)])),
]) WELL_KNOWN.set(t.name, t);

// every message and enum of the well-known files, by name (doc: "leaves, named, never described")
const WELL_KNOWN_NAMES = new Set([
  ...WELL_KNOWN.keys(),
  ...["Api", "Method", "Mixin", "SourceContext", "Type", "Field", "Field.Kind", "Field.Cardinality",
    "Enum", "EnumValue", "Option", "Syntax"].map((n) => `google.protobuf.${n}`),
]);
const isWellKnownName = (name) =>
  WELL_KNOWN_NAMES.has(name) ||
  // descriptor.proto's messages and enums: FileDescriptorSet, DescriptorProto, ...
  /^google\.protobuf\.(FileDescriptorSet|FileDescriptorProto|DescriptorProto|ExtensionRangeOptions|FieldDescriptorProto|OneofDescriptorProto|EnumDescriptorProto|EnumValueDescriptorProto|ServiceDescriptorProto|MethodDescriptorProto|FileOptions|MessageOptions|FieldOptions|OneofOptions|EnumOptions|EnumValueOptions|ServiceOptions|MethodOptions|UninterpretedOption|FeatureSet|FeatureSetDefaults|SourceCodeInfo|GeneratedCodeInfo|Edition|SymbolVisibility)(\..*)?$/.test(name);

// ---------------------------------------------------------------------------------------------
// the canonical form and the schema id

function mergeRanges(list, gap) {
  const sorted = [...list].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out = [];
  for (const [s, e] of sorted) {
    const last = out.at(-1);
    if (last && s <= last[1] + gap) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0); // UTF-16 order; every name is ASCII

function describe(type) {
  const reservedNames = [...new Set(type.reservedNames)].sort(cmp);
  if (type.kind === "enum") {
    return {
      kind: "enum", name: type.name, reserved_names: reservedNames,
      reserved_ranges: mergeRanges(type.reservedRanges, 1), syntax: type.syntax,
      values: [...type.values].sort((a, b) => a.number - b.number || cmp(a.name, b.name))
        .map((v) => ({ name: v.name, number: v.number })),
    };
  }
  return {
    fields: [...type.fields].sort((a, b) => a.number - b.number).map((f) => ({
      default: f.default, label: f.label, name: f.name, number: f.number, oneof: f.oneof,
      packed: f.packed, proto3_optional: f.proto3Optional, type: f.type,
      type_name: f.typeName.startsWith(".") ? f.typeName.slice(1) : f.typeName,
    })),
    kind: "message", map_entry: type.mapEntry, name: type.name, reserved_names: reservedNames,
    reserved_ranges: mergeRanges(type.reservedRanges, 0), syntax: type.syntax,
  };
}

// RFC 8785 for these value types: sorted keys, no whitespace, lower-case \u00xx escapes
function jcs(value) {
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error("only integers in the canonical form");
    return String(value);
  }
  if (typeof value === "string") return JSON.stringify(value); // escapes exactly ", \, controls
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  const keys = Object.keys(value).sort(cmp);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(value[k])}`).join(",")}}`;
}

function canonicalForm(types, root) {
  const reached = new Map();
  const queue = [root];
  while (queue.length) {
    const name = queue.shift();
    if (reached.has(name) || isWellKnownName(name)) continue;
    const type = types.get(name);
    if (!type) throw new WireError("schema_invalid", `type ${name} is not in the file set`);
    reached.set(name, type);
    if (type.kind !== "message") continue;
    for (const f of type.fields) {
      if (f.type === "message" || f.type === "enum" || f.type === "group") {
        if (!f.typeName.startsWith(".")) {
          throw new WireError("schema_invalid", `type_name ${f.typeName} is not fully qualified`);
        }
        queue.push(f.typeName.slice(1));
      }
    }
  }
  const described = [...reached.values()].map(describe).sort((a, b) => cmp(a.name, b.name));
  return jcs({ canonical: 1, root, types: described });
}

function schemaIdOf(types, root) {
  const digest = createHash("sha256").update(Buffer.from(canonicalForm(types, root), "utf8")).digest();
  return { id: `s1${digest.subarray(0, 12).toString("base64url")}`, digest };
}

// ---------------------------------------------------------------------------------------------
// the registry

async function loadSchema(redis, prefix, schemaId, cache) {
  if (cache.has(schemaId)) return cache.get(schemaId);
  const record = await redis.command("HGET", `${prefix}schemas`, schemaId);
  let result;
  if (record === null) {
    result = { refused: "unknown_schema" };
  } else {
    try {
      result = buildRecord(record, schemaId);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      result = { refused: "schema_invalid", detail: err.message, recomputedId: err.recomputedId };
    }
  }
  cache.set(schemaId, result);
  return result;
}

function buildRecord(record, schemaId) {
  if (record.length > LIMITS.recordBytes) throw new WireError("schema_invalid", "record over 1 MiB");
  let r;
  try {
    r = rawFields(record);
  } catch {
    throw new WireError("schema_invalid", "record does not parse");
  }
  const messageName = str(r, 2);
  const canonicalVersion = Number(num(r, 7));
  const fileSet = has(r, 1) ? r.get(1).at(-1) : Buffer.alloc(0);
  const types = indexFileSet(fileSet);
  const { id, digest } = schemaIdOf(types, messageName);
  const stored = has(r, 6) ? r.get(6).at(-1) : Buffer.alloc(0);
  const check = (ok, why) => {
    if (!ok) {
      const err = new WireError("schema_invalid", why);
      err.recomputedId = id;
      throw err;
    }
  };
  check(canonicalVersion === 1, `canonical_version ${canonicalVersion}`);
  check(id === schemaId, `record hashes to ${id}`);
  check(stored.equals(digest), "canonical_sha256 differs");
  const all = new Map([...WELL_KNOWN, ...types]);
  check(all.has(messageName) && all.get(messageName).kind === "message", `no message ${messageName}`);
  return { types: all, root: messageName, recomputedId: id, record: {
    subject: str(r, 3), version: Number(num(r, 4)), created_at_ms: String(has(r, 5) ? BigInt.asIntN(64, r.get(5).at(-1)) : 0n),
  } };
}

// ---------------------------------------------------------------------------------------------
// payload -> protobuf JSON mapping

const MAX_DEPTH = 100;
const utf8 = new TextDecoder("utf-8", { fatal: true });

const INT64 = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);
const PACKABLE = new Set(["double", "float", "int64", "uint64", "int32", "fixed64", "fixed32",
  "bool", "uint32", "enum", "sfixed32", "sfixed64", "sint32", "sint64"]);

function scalar(type, wire, raw) {
  // raw: BigInt from the wire (varint, fixed64 or fixed32 bits)
  switch (type) {
    case "int32": case "enum": return Number(BigInt.asIntN(32, raw));
    case "uint32": return Number(BigInt.asUintN(32, raw));
    case "sint32": case "sint64": {
      const v = (raw >> 1n) ^ -(raw & 1n);
      return type === "sint32" ? Number(BigInt.asIntN(32, v)) : BigInt.asIntN(64, v);
    }
    case "int64": case "sfixed64": return BigInt.asIntN(64, raw);
    case "uint64": case "fixed64": return BigInt.asUintN(64, raw);
    case "fixed32": return Number(raw);
    case "sfixed32": return Number(BigInt.asIntN(32, raw));
    case "bool": return raw !== 0n;
    case "double": {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(raw);
      return b.readDoubleLE(0);
    }
    case "float": {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(Number(raw));
      return b.readFloatLE(0);
    }
    default: throw new WireError("decode_error", `scalar ${type}`);
  }
}

const WIRE_OF = { double: 1, fixed64: 1, sfixed64: 1, float: 5, fixed32: 5, sfixed32: 5 };
const wireOf = (type) => WIRE_OF[type] ?? (type === "string" || type === "bytes" || type === "message" ? 2 : type === "group" ? 3 : 0);

// decoded message: Map number -> {field, value} | {field, values: []}; message values are
// {type, fields} records, decoded once all chunks are in (chunks of one field merge)
function decodeMessage(types, type, buf, depth) {
  if (depth > MAX_DEPTH) throw new WireError("decode_depth", `nesting deeper than ${MAX_DEPTH}`);
  const byNumber = new Map(type.fields.map((f) => [f.number, f]));
  const out = new Map();
  const chunks = new Map(); // singular message fields: number -> [Buffer]
  const reader = new Reader(buf);
  while (!reader.done()) {
    const { number, wire, value } = reader.field();
    const field = byNumber.get(number);
    if (!field) continue; // unknown field: skipped
    if (field.oneof) {
      for (const other of type.fields) {
        if (other.oneof === field.oneof && other.number !== number) {
          out.delete(other.number);
          chunks.delete(other.number);
        }
      }
    }
    const repeated = field.label === "repeated";
    const expected = wireOf(field.type);
    if (field.type === "message" || field.type === "group") {
      if (wire !== expected) throw new WireError("decode_error", `field ${number}: wire type ${wire}`);
      const sub = types.get(field.typeName.replace(/^\./, ""));
      if (!sub) throw new WireError("schema_invalid", `no type ${field.typeName}`);
      if (repeated) {
        if (!out.has(number)) out.set(number, { field, values: [] });
        out.get(number).values.push({ type: sub, fields: decodeMessage(types, sub, value, depth + 1) });
      } else {
        if (!chunks.has(number)) chunks.set(number, []);
        chunks.get(number).push(value);
        out.set(number, { field, value: null });
      }
      continue;
    }
    let values;
    if (wire === 2 && PACKABLE.has(field.type)) {
      values = [];
      const packed = new Reader(value);
      while (!packed.done()) values.push(scalar(field.type, expected, packed.value(number, expected)));
    } else if (wire !== expected) {
      throw new WireError("decode_error", `field ${number}: wire type ${wire}`);
    } else if (field.type === "string") {
      let text;
      try {
        text = utf8.decode(value);
      } catch {
        throw new WireError("decode_error", `field ${number}: invalid UTF-8`);
      }
      values = [text];
    } else if (field.type === "bytes") {
      values = [Buffer.from(value)];
    } else {
      values = [scalar(field.type, wire, value)];
    }
    if (repeated) {
      if (!out.has(number)) out.set(number, { field, values: [] });
      out.get(number).values.push(...values);
    } else {
      out.set(number, { field, value: values.at(-1) });
    }
  }
  for (const [number, parts] of chunks) {
    if (!out.has(number)) continue;
    const field = out.get(number).field;
    const sub = types.get(field.typeName.replace(/^\./, ""));
    out.get(number).value = { type: sub, fields: decodeMessage(types, sub, Buffer.concat(parts), depth + 1) };
  }
  return out;
}

function defaultOf(field) {
  if (field.type === "string") return "";
  if (field.type === "bytes") return Buffer.alloc(0);
  if (field.type === "bool") return false;
  if (INT64.has(field.type)) return 0n;
  return 0;
}

function isDefault(field, value) {
  if (field.type === "bytes") return value.length === 0;
  if (field.type === "double" || field.type === "float") return value === 0 && !Object.is(value, -0);
  return value === defaultOf(field);
}

function shortestFloat(value) {
  // the shortest decimal, from 6 significant digits up, that reads back as the same float32
  for (let p = 6; p <= 17; p++) {
    const rounded = Number(value.toPrecision(p));
    if (Math.fround(rounded) === value) return rounded;
  }
  return value;
}

function scalarJson(field, value, types) {
  if (field.type === "enum") {
    const name = field.typeName.replace(/^\./, "");
    if (name === "google.protobuf.NullValue") return null;
    const en = types.get(name);
    const known = en?.values.find((v) => v.number === value);
    return known ? known.name : value;
  }
  if (INT64.has(field.type)) return value.toString();
  if (field.type === "bytes") return value.toString("base64");
  if (field.type === "double" || field.type === "float") {
    if (Number.isNaN(value)) return "NaN";
    if (value === Infinity) return "Infinity";
    if (value === -Infinity) return "-Infinity";
    return field.type === "float" ? shortestFloat(value) : value;
  }
  return value;
}

function valueJson(field, value, types) {
  if (field.type === "message" || field.type === "group") return messageJson(value.type, value.fields, types);
  return scalarJson(field, value, types);
}

const get = (fields, number, dflt) => (fields.has(number) ? fields.get(number).value : dflt);

function pad(n, width) {
  return String(n).padStart(width, "0");
}

function fraction(nanos) {
  if (nanos === 0) return "";
  if (nanos % 1e6 === 0) return `.${pad(nanos / 1e6, 3)}`;
  if (nanos % 1e3 === 0) return `.${pad(nanos / 1e3, 6)}`;
  return `.${pad(nanos, 9)}`;
}

function timestampJson(fields) {
  const seconds = get(fields, 1, 0n);
  const nanos = get(fields, 2, 0);
  if (seconds < -62135596800n || seconds > 253402300799n || nanos < 0 || nanos > 999999999) {
    throw new WireError("decode_error", "Timestamp out of range");
  }
  const d = new Date(Number(seconds) * 1000);
  const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
  const time = `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}`;
  return `${date}T${time}${fraction(nanos)}Z`;
}

function durationJson(fields) {
  let seconds = get(fields, 1, 0n);
  let nanos = get(fields, 2, 0);
  if (seconds < -315576000000n || seconds > 315576000000n || nanos < -999999999 || nanos > 999999999 ||
    (seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    throw new WireError("decode_error", "Duration out of range");
  }
  let sign = "";
  if (seconds < 0n || nanos < 0) {
    sign = "-";
    seconds = -seconds;
    nanos = -nanos;
  }
  return `${sign}${seconds}${fraction(nanos)}s`;
}

function fieldMaskJson(fields) {
  const paths = fields.has(1) ? fields.get(1).values : [];
  return paths.map((p) => p.replace(/_([a-z])/g, (_, c) => c.toUpperCase())).join(",");
}

function structJson(fields, types) {
  const out = {};
  for (const entry of fields.has(1) ? fields.get(1).values : []) {
    const key = get(entry.fields, 1, "");
    const value = entry.fields.has(2) ? entry.fields.get(2).value : null;
    out[key] = value ? valueOfValue(value.fields, types) : null;
  }
  return out;
}

function valueOfValue(fields, types) {
  if (fields.has(1)) return null;
  if (fields.has(2)) {
    const v = fields.get(2).value;
    if (!Number.isFinite(v)) throw new WireError("decode_error", "Value number is not finite");
    return v;
  }
  if (fields.has(3)) return fields.get(3).value;
  if (fields.has(4)) return fields.get(4).value;
  if (fields.has(5)) return structJson(fields.get(5).value.fields, types);
  if (fields.has(6)) return listJson(fields.get(6).value.fields, types);
  throw new WireError("decode_error", "Value without a kind");
}

function listJson(fields, types) {
  return (fields.has(1) ? fields.get(1).values : []).map((v) => valueOfValue(v.fields, types));
}

function anyJson(fields, types) {
  if (fields.size === 0) return {};
  const url = get(fields, 1, "");
  const bytes = get(fields, 2, Buffer.alloc(0));
  const name = url.slice(url.lastIndexOf("/") + 1);
  const inner = types.get(name);
  if (!inner || inner.kind !== "message") throw new WireError("decode_error", `Any of unknown type ${url}`);
  const json = messageJson(inner, decodeMessage(types, inner, bytes, 1), types);
  if (inner.wellKnown && SPECIAL.has(inner.name)) return { "@type": url, value: json };
  return { "@type": url, ...json };
}

const WRAPPERS = new Set(["Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"]
  .map((n) => `google.protobuf.${n}Value`));
const SPECIAL = new Set(["google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
  "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any",
  "google.protobuf.Empty", ...WRAPPERS]);

function messageJson(type, fields, types) {
  if (type.wellKnown) {
    switch (type.name) {
      case "google.protobuf.Timestamp": return timestampJson(fields);
      case "google.protobuf.Duration": return durationJson(fields);
      case "google.protobuf.FieldMask": return fieldMaskJson(fields);
      case "google.protobuf.Struct": return structJson(fields, types);
      case "google.protobuf.Value": return valueOfValue(fields, types);
      case "google.protobuf.ListValue": return listJson(fields, types);
      case "google.protobuf.Any": return anyJson(fields, types);
      case "google.protobuf.Empty": return {};
      default:
        if (WRAPPERS.has(type.name)) {
          const f = type.fields[0];
          return scalarJson(f, get(fields, 1, defaultOf(f)), types);
        }
    }
  }
  const out = {};
  for (const field of type.fields) {
    if (!fields.has(field.number)) continue;
    const entry = fields.get(field.number);
    const sub = field.type === "message" ? types.get(field.typeName.replace(/^\./, "")) : null;
    if (sub?.mapEntry) {
      if (entry.values.length === 0) continue;
      const [keyField, valueField] = [1, 2].map((n) => sub.fields.find((f) => f.number === n));
      const map = {};
      for (const item of entry.values) {
        const key = get(item.fields, 1, defaultOf(keyField));
        const keyText = typeof key === "bigint" ? key.toString() : String(key);
        let value;
        if (item.fields.has(2)) value = valueJson(valueField, item.fields.get(2).value, types);
        else if (valueField.type === "message") {
          const vt = types.get(valueField.typeName.replace(/^\./, ""));
          value = messageJson(vt, new Map(), types);
        } else value = scalarJson(valueField, defaultOf(valueField), types);
        map[keyText] = value;
      }
      out[field.jsonName] = map;
      continue;
    }
    if (field.label === "repeated") {
      if (entry.values.length === 0) continue;
      out[field.jsonName] = entry.values.map((v) => valueJson(field, v, types));
      continue;
    }
    const hasPresence = type.syntax === "proto2" || field.type === "message" || field.type === "group" ||
      field.oneof !== "" || field.proto3Optional;
    if (!hasPresence && isDefault(field, entry.value)) continue;
    out[field.jsonName] = valueJson(field, entry.value, types);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// entries

function zstdContentSize(frame) {
  if (frame.length < 6 || frame.readUInt32LE(0) !== 0xfd2fb528) return null;
  const descriptor = frame[4];
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const dictFlag = descriptor & 3;
  let pos = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictFlag];
  const size = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  if (size === 0 || frame.length < pos + size) return null;
  if (size === 1) return frame[pos];
  if (size === 2) return frame.readUInt16LE(pos) + 256;
  if (size === 4) return frame.readUInt32LE(pos);
  return Number(frame.readBigUInt64LE(pos));
}

function inflate(frame) {
  if (typeof zlib.zstdDecompressSync === "function") return zlib.zstdDecompressSync(frame);
  const done = spawnSync("/usr/bin/zstd", ["-d", "-c", "-q"], { input: frame, maxBuffer: 1 << 30 });
  if (done.status !== 0) throw new Error(`zstd: ${done.stderr}`);
  return done.stdout;
}

function pairs(items) {
  const out = [];
  for (let i = 0; i + 1 < items.length; i += 2) out.push([items[i].toString("utf8"), items[i + 1]]);
  return out;
}

function envelopeOf(fieldMap) {
  const text = (name) => fieldMap.get(name).toString("utf8");
  const env = {
    attempt: fieldMap.has("attempt") ? Number(text("attempt")) : 1,
    requeues: fieldMap.has("requeues") ? Number(text("requeues")) : 0,
    headers: {},
  };
  for (const name of ["key", "origin", "traceparent", "tracestate", "encoding", "failed_at", "channel"]) {
    if (fieldMap.has(name)) env[name] = text(name);
  }
  for (const [name, value] of fieldMap) {
    if (name.startsWith("h:")) env.headers[name.slice(2)] = value.toString("utf8");
  }
  return env;
}

async function readEntry(redis, options, cache, items) {
  const out = {};
  let original = items;
  const last = items.length >= 2 ? items[items.length - 2].toString("utf8") : "";
  if (last === "dl:fields") {
    const count = Number(items[items.length - 1].toString("utf8"));
    if (!Number.isInteger(count) || count < 0 || count % 2 || count > items.length - 2) {
      out.refused = "dl_malformed";
      return out;
    }
    original = items.slice(0, count);
    out.dl = {};
    for (const [name, value] of pairs(items.slice(count))) out.dl[name] = value.toString("utf8");
  }
  const fieldMap = new Map(pairs(original)); // a repeated name: the last value
  out.envelope = envelopeOf(fieldMap);
  const schemaId = fieldMap.get("schema_id");
  const payload = fieldMap.get("payload");
  if (schemaId === undefined) {
    out.kind = "raw";
    if (payload === undefined) return { ...out, refused: "missing_field" };
    let parsed;
    try {
      parsed = JSON.parse(utf8.decode(payload));
    } catch {
      return { ...out, refused: "json_invalid" };
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      return { ...out, refused: "json_invalid" };
    }
    return { ...out, payload: parsed };
  }
  out.kind = "protobuf";
  out.schema_id = schemaId.toString("utf8");
  if (payload === undefined) return { ...out, refused: "missing_field" };
  const exactlyTwo = original.length === 4;
  const stored = exactlyTwo ? payload.length : original.reduce((n, b) => n + b.length, 0);
  if (stored > options.maxEntryBytes) return { ...out, refused: "oversize" };
  let bytes = payload;
  if (fieldMap.has("encoding")) {
    if (fieldMap.get("encoding").toString("utf8") !== "zstd") return { ...out, refused: "bad_encoding" };
    const size = zstdContentSize(payload);
    if (size === null) return { ...out, refused: "bad_encoding" };
    if (size > options.maxEntryBytes) return { ...out, refused: "oversize" };
    try {
      bytes = inflate(payload);
    } catch {
      return { ...out, refused: "bad_encoding" };
    }
    if (bytes.length !== size) return { ...out, refused: "bad_encoding" };
  }
  const schema = await loadSchema(redis, options.prefix, out.schema_id, cache);
  if (schema.recomputedId) out.recomputed_id = schema.recomputedId;
  if (schema.refused) return { ...out, refused: schema.refused, detail: schema.detail };
  out.message_name = schema.root;
  try {
    const root = schema.types.get(schema.root);
    out.payload = messageJson(root, decodeMessage(schema.types, root, bytes, 0), schema.types);
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    return { ...out, refused: err.reason, detail: err.message };
  }
  return out;
}

async function main() {
  const options = { host: "127.0.0.1", port: 6379, prefix: "gm:", maxEntryBytes: 1 << 20 };
  const streams = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--host") options.host = argv[++i];
    else if (argv[i] === "--port") options.port = Number(argv[++i]);
    else if (argv[i] === "--prefix") options.prefix = argv[++i];
    else if (argv[i] === "--max-entry-bytes") options.maxEntryBytes = Number(argv[++i]);
    else streams.push(argv[i]);
  }
  const redis = new Resp(options.host, options.port);
  await redis.connect();
  const cache = new Map();
  const lines = [];
  for (const stream of streams) {
    let start = "-";
    for (;;) {
      const page = await redis.command("XRANGE", stream, start, "+", "COUNT", 500);
      for (const [id, items] of page) {
        const entry = await readEntry(redis, options, cache, items);
        lines.push(JSON.stringify({ stream, id: id.toString("latin1"), ...entry }));
      }
      if (page.length < 500) break;
      start = `(${page.at(-1)[0].toString("latin1")}`;
    }
  }
  redis.close();
  process.stdout.write(lines.map((l) => `${l}\n`).join(""));
}

await main();
