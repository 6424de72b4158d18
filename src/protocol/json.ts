import { cut, InvalidJsonError } from './errors.js';

/**
 * A JSON number written with a fraction or an exponent. serde_json refuses
 * `1.0` where a u32 is expected while `JSON.parse` makes it `1`, so the
 * distinction is kept to reject what the guest's peer would reject.
 */
export class JsonFloat {
  constructor(
    readonly value: number,
    readonly source: string,
  ) {}
}

export type JsonValue = null | boolean | number | JsonFloat | string | JsonValue[] | { [key: string]: JsonValue };

const MAX_DEPTH = 128; // serde_json's default recursion limit
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses JSON as strictly as serde_json does for the frontend messages:
 * duplicate keys, trailing characters, control characters in strings, lone
 * surrogates and invalid UTF-8 are errors. Objects have no prototype, so a
 * `__proto__` key is plain data.
 */
export function parseStrictJson(input: Uint8Array | string): JsonValue {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = utf8.decode(input);
    } catch {
      throw new InvalidJsonError('payload is not valid UTF-8', 0);
    }
  }
  const parser = new Parser(text);
  parser.skipWs();
  if (parser.pos >= text.length) parser.fail('empty payload (EOF while parsing a value)');
  const value = parser.value(0);
  parser.skipWs();
  if (parser.pos < text.length) parser.fail('trailing characters after the JSON value');
  return value;
}

class Parser {
  pos = 0;
  constructor(private readonly s: string) {}

  fail(message: string): never {
    throw new InvalidJsonError(message, this.pos);
  }

  skipWs(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
      else break;
    }
  }

  value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    const c = this.s[this.pos];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      case undefined:
        return this.fail('EOF while parsing a value');
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.fail(`expected a value, found ${JSON.stringify(c)}`);
    }
  }

  private literal<T extends JsonValue>(word: string, v: T): T {
    if (this.s.startsWith(word, this.pos)) {
      this.pos += word.length;
      return v;
    }
    return this.fail('expected a value');
  }

  private object(depth: number): JsonValue {
    this.pos++; // {
    const out: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>;
    const seen = new Set<string>();
    this.skipWs();
    if (this.s[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      if (this.s[this.pos] !== '"') this.fail('expected a string key');
      const keyAt = this.pos;
      const key = this.string();
      if (seen.has(key)) {
        this.pos = keyAt;
        this.fail(`duplicate field ${cut(JSON.stringify(key))}`);
      }
      seen.add(key);
      this.skipWs();
      if (this.s[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      this.skipWs();
      out[key] = this.value(depth + 1);
      this.skipWs();
      const c = this.s[this.pos];
      this.pos++;
      if (c === '}') return out;
      if (c !== ',') {
        this.pos--;
        this.fail("expected ',' or '}'");
      }
    }
  }

  private array(depth: number): JsonValue {
    this.pos++; // [
    const out: JsonValue[] = [];
    this.skipWs();
    if (this.s[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      out.push(this.value(depth + 1));
      this.skipWs();
      const c = this.s[this.pos];
      this.pos++;
      if (c === ']') return out;
      if (c !== ',') {
        this.pos--;
        this.fail("expected ',' or ']'");
      }
    }
  }

  private number(): number | JsonFloat {
    const m = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.pos;
    const r = m.exec(this.s);
    if (r === null) this.fail('invalid number');
    const source = r[0];
    this.pos += source.length;
    const value = Number(source);
    return r[1] !== undefined || r[2] !== undefined ? new JsonFloat(value, source) : value;
  }

  private string(): string {
    const s = this.s;
    this.pos++; // opening quote
    let out = '';
    let start = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.fail('EOF while parsing a string');
      const c = s.charCodeAt(this.pos);
      if (c === 0x22) {
        out += s.slice(start, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail('control character in string');
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += s.slice(start, this.pos);
      this.pos++;
      const e = s[this.pos];
      this.pos++;
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u':
          out += this.unicodeEscape();
          break;
        default:
          this.pos--;
          this.fail('invalid escape');
      }
      start = this.pos;
    }
  }

  private hex4(): number {
    const h = this.s.slice(this.pos, this.pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('invalid \\u escape');
    this.pos += 4;
    return parseInt(h, 16);
  }

  private unicodeEscape(): string {
    const hi = this.hex4();
    if (hi >= 0xdc00 && hi <= 0xdfff) this.fail('lone trailing surrogate in \\u escape');
    if (hi < 0xd800 || hi > 0xdbff) return String.fromCharCode(hi);
    if (this.s[this.pos] !== '\\' || this.s[this.pos + 1] !== 'u') this.fail('lone leading surrogate in \\u escape');
    this.pos += 2;
    const lo = this.hex4();
    if (lo < 0xdc00 || lo > 0xdfff) this.fail('invalid low surrogate in \\u escape');
    return String.fromCharCode(hi, lo);
  }
}
