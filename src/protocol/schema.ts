import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { decodeStd, decodeUrl } from './base64.js';
import { cut, InvalidMessageError, isAproxyError } from './errors.js';
import { JsonFloat, parseStrictJson } from './json.js';

/**
 * Building blocks shared by the frontend and KBS message schemas. zod's mini
 * API: the same checks and messages (its English locale, set here) at about
 * half the CPU to build the schemas at start-up, before the first guest
 * (docs/performance.md).
 */
z.config(en());

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (field missing)';
  if (v === null) return 'null';
  if (v instanceof JsonFloat) return `floating point ${cut(v.source)}`;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${cut(JSON.stringify(v))}`;
}

/** Records why a custom step refused its input (the message names the problem; zod adds the field's path). */
function problem(ctx: z.core.ParsePayload, message: string, path?: PropertyKey[]): never {
  ctx.issues.push({ code: 'custom', message, input: ctx.value, ...(path === undefined ? {} : { path }) });
  return z.NEVER;
}

/** A string decoded to bytes by `decode`, whose error message is the field's problem. */
const decodedWith = (decode: (text: string) => Uint8Array) =>
  z.pipe(
    z.string(),
    z.transform((s: string, ctx) => {
      try {
        return decode(s);
      } catch (err) {
        return problem(ctx, isAproxyError(err) ? err.message : String(err));
      }
    }),
  );

/** Standard base64 with padding, decoded to bytes. */
export const b64Std = decodedWith(decodeStd);

/** base64url without padding, decoded to bytes. */
export const b64Url = decodedWith(decodeUrl);

export const u32 = z.transform((v: unknown, ctx) => {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
  return problem(ctx, `expected an unsigned 32-bit integer, got ${describe(v)}`);
});

/** Absent or null, as undefined: serde's Option. */
export function absentAsUndefined<S extends z.ZodMiniType>(schema: S) {
  return z.pipe(
    z.nullish(schema),
    z.transform((v: z.output<S> | null | undefined) => v ?? undefined),
  );
}

/**
 * serde's externally tagged enum with data: an object with exactly one key,
 * the variant name (case-sensitive).
 */
export function taggedUnion<T extends Record<string, z.ZodMiniType>>(variants: T) {
  const names = Object.keys(variants);
  return z.transform((v: unknown, ctx) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      return problem(ctx, `expected an object {"${names.join('"|"')}": …}, got ${describe(v)}`);
    }
    const keys = Object.keys(v);
    const tag = keys[0];
    if (keys.length !== 1 || tag === undefined) {
      return problem(ctx, `expected exactly one of ${names.map((n) => `"${n}"`).join(', ')} as the only key, got ${keys.length} keys`);
    }
    const schema = variants[tag];
    if (schema === undefined) {
      return problem(ctx, `unknown variant "${cut(tag)}", expected ${names.map((n) => `"${n}"`).join(' or ')}`);
    }
    const r = schema.safeParse((v as Record<string, unknown>)[tag]);
    if (!r.success) {
      for (const issue of r.error.issues) problem(ctx, issue.message, [tag, ...issue.path]);
      return z.NEVER;
    }
    return { tag, value: r.data } as { [K in keyof T]: { tag: K; value: z.output<T[K]> } }[keyof T];
  });
}

/** Parses a payload with the strict JSON reader and then a schema; errors name the field. */
export function parseWith<S extends z.ZodMiniType>(messageType: string, schema: S, payload: Uint8Array | string): z.output<S> {
  const json = parseStrictJson(payload);
  return validate(messageType, schema, json);
}

export function validate<S extends z.ZodMiniType>(messageType: string, schema: S, value: unknown): z.output<S> {
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
