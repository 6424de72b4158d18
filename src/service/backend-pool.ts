import type { Backend, SharedResources } from '../backends/contract.js';
import { withDeadline } from '../backends/deadline.js';
import type { PreparedBackend } from '../backends/registry.js';
import { describeError } from '../protocol/errors.js';
import type { Logger } from './log.js';

/** One backend and who holds it: listeners and the sessions they run. */
export interface PooledBackend {
  readonly key: string;
  readonly name: string;
  readonly backend: Backend;
  /** Listeners and sessions using it now. */
  readonly holders: number;
}

interface Entry extends PooledBackend {
  holders: number;
  /** Shared resources this backend acquired, released when it closes. */
  readonly acquired: Set<string>;
  closed?: Promise<void>;
}

interface Resource {
  readonly value: Promise<unknown>;
  readonly close: (value: never) => Promise<void>;
  users: number;
}

/**
 * The one owner of a running proxy's backends and of what they share (HTTP
 * pools). Listeners with the same protocol and options share one backend;
 * it closes when its last holder lets go (a reload moved every listener
 * away and their sessions ended), and its shared resources close when the
 * last backend using them has.
 */
export class BackendPool {
  private readonly entries = new Map<string, Entry>();
  private readonly resources = new Map<string, Resource>();
  /** Closes in progress (a backend whose last holder let go), awaited by close(). */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly callTimeoutMs: number,
    private readonly log: Logger,
  ) {}

  /** The backends alive now, for a reader of the running proxy. */
  get backends(): readonly PooledBackend[] {
    return [...this.entries.values()];
  }

  /** Shared resources open now, by key. */
  get sharedKeys(): readonly string[] {
    return [...this.resources.keys()];
  }

  /** Does the pool hold a backend for this key. */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Creates the prepared backends: all of them, or (on a failure) none. */
  async create(prepared: ReadonlyMap<string, PreparedBackend>): Promise<void> {
    const made: Entry[] = [];
    try {
      for (const [key, p] of prepared) {
        const definition = await p.load();
        const acquired = new Set<string>();
        const backend = await withDeadline(definition.name, 'create', this.callTimeoutMs, async () =>
          definition.create(p.options, { log: this.log.child({ backend: definition.name }), shared: this.sharedFor(acquired) }),
        );
        made.push({ key, name: definition.name, backend, holders: 0, acquired });
      }
    } catch (err) {
      await Promise.all(made.map((e) => this.closeEntry(e)));
      throw err;
    }
    for (const e of made) this.entries.set(e.key, e);
  }

  /** A hold on the backend for `key` if the pool has it (its release function), else undefined. */
  tryHold(key: string): (() => void) | undefined {
    return this.entries.has(key) ? this.hold(key).release : undefined;
  }

  /** Takes a hold on the backend for `key`; the function returned lets go, once. */
  hold(key: string): { readonly name: string; readonly backend: Backend; readonly release: () => void } {
    const e = this.entries.get(key);
    if (e === undefined) throw new Error(`no backend ${key} in the pool`);
    e.holders++;
    let released = false;
    return {
      name: e.name,
      backend: e.backend,
      release: () => {
        if (released) return;
        released = true;
        if (--e.holders === 0 && this.entries.get(key) === e) {
          this.entries.delete(key);
          void this.closeEntry(e);
        }
      },
    };
  }

  /** Loads what the first guest will need (an HTTP client) ahead of it. */
  warm(): void {
    for (const e of this.entries.values()) e.backend.warm?.();
  }

  /** Closes every backend and shared resource, held or not, and waits for closes already under way (shutdown). */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all([...all.map((e) => this.closeEntry(e)), ...this.closing]);
  }

  private closeEntry(e: Entry): Promise<void> {
    if (e.closed === undefined) {
      const closed = withDeadline(e.name, 'close', this.callTimeoutMs, async () => e.backend.close())
        .catch((err: unknown) =>
          this.log.error({ backend: e.name, err: { message: describeError(err) } }, `backend close failed: ${describeError(err)}`),
        )
        .then(() => Promise.all([...e.acquired].map((k) => this.release(k))))
        .then(() => void this.closing.delete(closed));
      this.closing.add(closed);
      e.closed = closed;
    }
    return e.closed;
  }

  private sharedFor(acquired: Set<string>): SharedResources {
    return {
      acquire: <T>(key: string, open: () => Promise<T>, close: (value: T) => Promise<void>): Promise<T> => {
        let r = this.resources.get(key);
        if (r === undefined) {
          r = { value: open(), close: close as (value: never) => Promise<void>, users: 0 };
          this.resources.set(key, r);
        }
        if (!acquired.has(key)) {
          acquired.add(key);
          r.users++;
        }
        return r.value as Promise<T>;
      },
    };
  }

  private async release(key: string): Promise<void> {
    const r = this.resources.get(key);
    if (r === undefined || --r.users > 0) return;
    this.resources.delete(key);
    try {
      await r.close((await r.value) as never);
    } catch (err) {
      this.log.error(
        { resource: key, err: { message: describeError(err) } },
        `shared backend resource close failed: ${describeError(err)}`,
      );
    }
  }
}
