// A second implementation of the schema id, written from docs/wire-format.md alone, in
// JavaScript with Node's standard library only (its own small protobuf reader included).
// Usage: node schema_id.mjs FILE_DESCRIPTOR_SET_PATH MESSAGE_FULL_NAME  -> prints the id
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

function readVarint(buf, pos) {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buf[pos++];
    result |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return [result, pos];
    shift += 7n;
  }
}

// field number -> list of values (BigInt for varints, Buffer for length-delimited)
function fields(buf) {
  const out = new Map();
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const number = Number(key >> 3n);
    const wire = Number(key & 7n);
    let value;
    if (wire === 0) {
      [value, pos] = readVarint(buf, pos);
    } else if (wire === 2) {
      let length;
      [length, pos] = readVarint(buf, pos);
      value = buf.subarray(pos, pos + Number(length));
      pos += Number(length);
    } else if (wire === 1) {
      pos += 8;
      continue;
    } else if (wire === 5) {
      pos += 4;
      continue;
    } else {
      throw new Error(`wire type ${wire}`);
    }
    if (!out.has(number)) out.set(number, []);
    out.get(number).push(value);
  }
  return out;
}

const str = (f, n, d = "") => (f.has(n) ? f.get(n).at(-1).toString("utf8") : d);
const strs = (f, n) => (f.get(n) ?? []).map((b) => b.toString("utf8"));
const int32 = (f, n, d = 0) => (f.has(n) ? Number(BigInt.asIntN(32, f.get(n).at(-1))) : d);
const bool = (f, n) => (f.has(n) ? f.get(n).at(-1) !== 0n : false);
const subs = (f, n) => (f.get(n) ?? []).map(fields);

const TYPES = [null, "double", "float", "int64", "uint64", "int32", "fixed64", "fixed32", "bool",
  "string", "group", "message", "bytes", "uint32", "enum", "sfixed32", "sfixed64", "sint32",
  "sint64"];
const LABELS = [null, "optional", "required", "repeated"];
const WELL_KNOWN = new Set(["any", "api", "descriptor", "duration", "empty", "field_mask",
  "source_context", "struct", "timestamp", "type", "wrappers"]
  .map((name) => `google/protobuf/${name}.proto`));

function merged(ranges, gap) {
  const out = [];
  for (const [start, end] of ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1])) {
    const last = out.at(-1);
    if (last && start <= last[1] + gap) last[1] = Math.max(last[1], end);
    else out.push([start, end]);
  }
  return out;
}

function describeMessage(name, m, syntax) {
  const oneofs = subs(m, 8).map((o) => str(o, 1));
  const described = subs(m, 2).map((f) => {
    const type = TYPES[int32(f, 5)];
    const proto3Optional = bool(f, 17);
    const options = f.has(8) ? fields(f.get(8).at(-1)) : new Map();
    const typeName = str(f, 6);
    return {
      default: f.has(7) ? str(f, 7) : null,
      label: LABELS[int32(f, 4)],
      name: str(f, 1),
      number: int32(f, 3),
      oneof: f.has(9) && !proto3Optional ? oneofs[int32(f, 9)] : "",
      packed: options.has(2) ? bool(options, 2) : null,
      proto3_optional: proto3Optional,
      type,
      type_name: ["message", "enum", "group"].includes(type) ? typeName.slice(1) : "",
    };
  });
  const options = m.has(7) ? fields(m.get(7).at(-1)) : new Map();
  return {
    fields: described.sort((a, b) => a.number - b.number),
    kind: "message",
    map_entry: bool(options, 7),
    name,
    reserved_names: [...new Set(strs(m, 10))].sort(),
    reserved_ranges: merged(subs(m, 9).map((r) => [int32(r, 1), int32(r, 2)]), 0),
    syntax,
  };
}

function describeEnum(name, e, syntax) {
  return {
    kind: "enum",
    name,
    reserved_names: [...new Set(strs(e, 5))].sort(),
    reserved_ranges: merged(subs(e, 4).map((r) => [int32(r, 1), int32(r, 2)]), 1),
    syntax,
    values: subs(e, 2)
      .map((v) => ({ name: str(v, 1), number: int32(v, 2) }))
      .sort((a, b) => a.number - b.number || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  };
}

function index(set) {
  const types = new Map();
  const join = (scope, name) => (scope ? `${scope}.${name}` : name);
  const walk = (scope, m, syntax) => {
    const name = join(scope, str(m, 1));
    types.set(name, () => describeMessage(name, m, syntax));
    for (const e of subs(m, 4)) {
      const enumName = join(name, str(e, 1));
      types.set(enumName, () => describeEnum(enumName, e, syntax));
    }
    for (const nested of subs(m, 3)) walk(name, nested, syntax);
  };
  for (const file of subs(set, 1)) {
    if (WELL_KNOWN.has(str(file, 1))) continue;
    const syntax = str(file, 12) === "proto3" ? "proto3" : "proto2";
    const pkg = str(file, 2);
    for (const e of subs(file, 5)) {
      const enumName = join(pkg, str(e, 1));
      types.set(enumName, () => describeEnum(enumName, e, syntax));
    }
    for (const m of subs(file, 4)) walk(pkg, m, syntax);
  }
  return types;
}

// RFC 8785 for the values this document holds: sorted keys, no whitespace
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const [setPath, root] = process.argv.slice(2);
const types = index(fields(readFileSync(setPath)));
const described = new Map();
const pending = [root];
while (pending.length) {
  const name = pending.pop();
  if (described.has(name) || !types.has(name)) continue; // absent: a well-known type
  const type = types.get(name)();
  described.set(name, type);
  if (type.kind === "message") pending.push(...type.fields.map((f) => f.type_name).filter(Boolean));
}
const sortedTypes = [...described.keys()].sort().map((name) => described.get(name));
const doc = canonical({ canonical: 1, root, types: sortedTypes });
const digest = createHash("sha256").update(doc, "utf8").digest();
process.stdout.write(`s1${digest.subarray(0, 12).toString("base64url")}\n`);
