import * as z from 'zod';
import { decodeStd, decodeUrl } from './base64.js';
import { cut, InvalidMessageError, isAproxyError } from './errors.js';
import { JsonFloat, parseStrictJson } from './json.js';

/** Building blocks shared by the frontend and KBS message schemas. */

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (field missing)';
  if (v === null) return 'null';
  if (v instanceof JsonFloat) return `floating point ${cut(v.source)}`;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${cut(JSON.stringify(v))}`;
}

/** Standard base64 with padding, decoded to bytes. */
export const b64Std = z.string().transform((s, ctx) => {
  try {
    return decodeStd(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: isAproxyError(err) ? err.message : String(err) });
    return z.NEVER;
  }
});

/** base64url without padding, decoded to bytes. */
export const b64Url = z.string().transform((s, ctx) => {
  try {
    return decodeUrl(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: isAproxyError(err) ? err.message : String(err) });
    return z.NEVER;
  }
});

export const u32 = z.unknown().transform((v, ctx) => {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
  ctx.addIssue({ code: 'custom', message: `expected an unsigned 32-bit integer, got ${describe(v)}` });
  return z.NEVER;
});

/**
 * serde's externally tagged enum with data: an object with exactly one key,
 * the variant name (case-sensitive).
 */
export function taggedUnion<T extends Record<string, z.ZodType>>(variants: T) {
  const names = Object.keys(variants);
  return z.unknown().transform((v, ctx) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      ctx.addIssue({ code: 'custom', message: `expected an object {"${names.join('"|"')}": …}, got ${describe(v)}` });
      return z.NEVER;
    }
    const keys = Object.keys(v);
    const tag = keys[0];
    if (keys.length !== 1 || tag === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected exactly one of ${names.map((n) => `"${n}"`).join(', ')} as the only key, got ${keys.length} keys`,
      });
      return z.NEVER;
    }
    const schema = variants[tag];
    if (schema === undefined) {
      ctx.addIssue({ code: 'custom', message: `unknown variant "${cut(tag)}", expected ${names.map((n) => `"${n}"`).join(' or ')}` });
      return z.NEVER;
    }
    const r = schema.safeParse((v as Record<string, unknown>)[tag]);
    if (!r.success) {
      for (const issue of r.error.issues) {
        ctx.addIssue({ code: 'custom', message: issue.message, path: [tag, ...issue.path] });
      }
      return z.NEVER;
    }
    return { tag, value: r.data } as { [K in keyof T]: { tag: K; value: z.output<T[K]> } }[keyof T];
  });
}

/** Parses a payload with the strict JSON reader and then a schema; errors name the field. */
export function parseWith<S extends z.ZodType>(messageType: string, schema: S, payload: Uint8Array | string): z.output<S> {
  const json = parseStrictJson(payload);
  return validate(messageType, schema, json);
}

export function validate<S extends z.ZodType>(messageType: string, schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue === undefined) throw new InvalidMessageError(messageType, '', 'invalid');
  const missing = issue.path.length > 0 && valueAt(value, issue.path) === undefined;
  throw new InvalidMessageError(messageType, issue.path.map(String).join('.'), missing ? 'missing field' : issue.message);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}
