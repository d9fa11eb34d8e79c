// A second implementation of the schema id, written from docs/wire-format.md alone, in
// JavaScript with Node's standard library only (its own small protobuf reader included).
// Usage: node schema_id.mjs FILE_DESCRIPTOR_SET_PATH MESSAGE_FULL_NAME  -> prints the id
//        node schema_id.mjs --defaults < [[type, text], ...]  -> the canonical default texts
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

// a proto2 default in the canonical text protoc writes (docs/wire-format.md, "Defaults")
const INT_RANGES = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n], sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n], uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n], int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n], sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n], fixed64: [0n, 2n ** 64n - 1n],
};
const NAMED = { n: 10, r: 13, t: 9, '"': 34, "'": 39, "\\": 92, "?": 63, a: 7, b: 8, f: 12, v: 11 };
const ESCAPED = { 10: "\\n", 13: "\\r", 9: "\\t", 34: '\\"', 39: "\\'", 92: "\\\\" };

// C's printf("%.{p}g", x) for a finite double: exact digits, rounded half to even
function formatG(x, p) {
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  if (x === 0) return `${sign}0`;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> 52n);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exp2 = biased - 1075;
  if (biased === 0) exp2 = -1074;
  else mantissa |= 1n << 52n;
  // x = digits * 10^-scale exactly
  const digits = exp2 >= 0 ? (mantissa << BigInt(exp2)).toString() : (mantissa * 5n ** BigInt(-exp2)).toString();
  const scale = exp2 >= 0 ? 0 : -exp2;
  let exp10 = digits.length - 1 - scale;
  let kept = digits.slice(0, p).padEnd(p, "0");
  const rest = digits.slice(p);
  if (rest) {
    const half = "5".padEnd(rest.length, "0");
    const odd = Number(kept.at(-1)) % 2 === 1;
    if (rest > half || (rest === half && odd)) {
      kept = (BigInt(kept) + 1n).toString();
      if (kept.length > p) { kept = kept.slice(0, p); exp10 += 1; }
    }
  }
  const trim = (s) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
  if (exp10 < -4 || exp10 >= p) {
    const mant = trim(`${kept[0]}.${kept.slice(1)}`);
    const e = Math.abs(exp10).toString().padStart(2, "0");
    return `${sign}${mant}e${exp10 < 0 ? "-" : "+"}${e}`;
  }
  if (exp10 >= 0) return sign + trim(`${kept.slice(0, exp10 + 1)}.${kept.slice(exp10 + 1)}`);
  return sign + trim(`0.${"0".repeat(-exp10 - 1)}${kept}`);
}

function unescapeC(text) {
  const raw = Buffer.from(text, "utf8");
  const out = [];
  for (let i = 0; i < raw.length; ) {
    const byte = raw[i++];
    if (byte !== 92) { out.push(byte); continue; }
    if (i === raw.length) throw new Error(`bytes default ${text}: lone backslash`);
    const code = String.fromCharCode(raw[i]);
    if (code in NAMED) { out.push(NAMED[code]); i++; continue; }
    let end = i;
    if (/[0-7]/.test(code)) {
      while (end < Math.min(i + 3, raw.length) && /[0-7]/.test(String.fromCharCode(raw[end]))) end++;
      out.push(parseInt(raw.subarray(i, end).toString(), 8) & 0xff);
    } else if (code === "x" || code === "X") {
      end = i + 1;
      while (end < Math.min(i + 3, raw.length) && /[0-9a-fA-F]/.test(String.fromCharCode(raw[end]))) end++;
      if (end === i + 1) throw new Error(`bytes default ${text}: \\x without digits`);
      out.push(parseInt(raw.subarray(i + 1, end).toString(), 16));
    } else {
      throw new Error(`bytes default ${text}: unknown escape`);
    }
    i = end;
  }
  return out;
}

function canonicalDefault(type, text) {
  if (type === "double" || type === "float") {
    if (!/^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)$/i.test(text)) {
      throw new Error(`${type} default ${text} is not a number`);
    }
    const lower = text.toLowerCase().replace(/^\+/, "");
    let value = /nan$/.test(lower) ? NaN : /inf/.test(lower) ? (lower.startsWith("-") ? -Infinity : Infinity) : Number(text);
    if (Number.isNaN(value)) return "nan";
    if (type === "float") value = Math.fround(value);
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
    const [short, long, same] = type === "double"
      ? [15, 17, (s) => Number(s) === value]
      : [6, 9, (s) => Math.fround(Number(s)) === value];
    const text15 = formatG(value, short);
    return same(text15) ? text15 : formatG(value, long);
  }
  if (type in INT_RANGES) {
    const match = /^(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.exec(text);
    if (!match) throw new Error(`${type} default ${text} is not an integer`);
    const [, minus, digits] = match;
    const magnitude = /^0[xX]/.test(digits) ? BigInt(`0x${digits.slice(2)}`)
      : digits.startsWith("0") ? BigInt(`0o${digits.slice(1) || "0"}`) : BigInt(digits);
    const value = minus ? -magnitude : magnitude;
    const [low, high] = INT_RANGES[type];
    if (value < low || value > high) throw new Error(`${type} default ${text} out of range`);
    return value.toString();
  }
  if (type === "bool") {
    if (text !== "true" && text !== "false") throw new Error(`bool default ${text}`);
    return text;
  }
  if (type === "bytes") {
    return unescapeC(text).map((b) => ESCAPED[b] ?? (b >= 0x20 && b <= 0x7e
      ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, "0")}`)).join("");
  }
  return text;
}

function describeMessage(name, m, syntax) {
  const oneofs = subs(m, 8).map((o) => str(o, 1));
  const described = subs(m, 2).map((f) => {
    const type = TYPES[int32(f, 5)];
    const proto3Optional = bool(f, 17);
    const options = f.has(8) ? fields(f.get(8).at(-1)) : new Map();
    const typeName = str(f, 6);
    return {
      default: f.has(7) ? canonicalDefault(type, str(f, 7)) : null,
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

function schemaId(setPath, root) {
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
  return `s1${digest.subarray(0, 12).toString("base64url")}`;
}

const args = process.argv.slice(2);
if (args[0] === "--defaults") {
  // stdin: a JSON list of [type, text]; stdout: the canonical texts, or {"error": ...}
  const cases = JSON.parse(readFileSync(0, "utf8"));
  const out = cases.map(([type, text]) => {
    try {
      return canonicalDefault(type, text);
    } catch (error) {
      return { error: error.message };
    }
  });
  process.stdout.write(`${JSON.stringify(out)}\n`);
} else {
  process.stdout.write(`${schemaId(args[0], args[1])}\n`);
}
