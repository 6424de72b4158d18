/** `ADDR:PORT` (or `[v6]:PORT`, or `:PORT` for loopback) → host and port. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new RangeError(`expected ADDR:PORT, e.g. 127.0.0.1:9464, got ${JSON.stringify(text)}`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}
