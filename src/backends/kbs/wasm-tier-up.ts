import { setFlagsFromString } from 'node:v8';

/**
 * V8's budget for moving a hot WebAssembly function to its optimising
 * compiler: the largest it takes (Node's default is 1.8 million on Node 20,
 * 13 million on 22 and 24).
 */
export const WASM_TIERING_BUDGET = 2 ** 31 - 1;

let deferred = false;

/**
 * undici parses HTTP with llhttp compiled to WebAssembly, when its first
 * connection opens. V8 runs wasm from its baseline compiler and moves a
 * function that has spent its tiering budget to TurboFan on a background
 * thread. llhttp's parser is one large function that spends Node's default
 * budget within the first few exchanges, and optimising it cost 70–120 ms
 * of CPU and 7–13 MiB of memory while the first guests after a start were
 * served (docs/performance.md). With the largest budget the parser is
 * optimised only once it has run 165 (Node 22, 24) to 1,200 (Node 20) times longer: in a warm proxy,
 * not in a boot storm.
 *
 * V8 reads the budget when it compiles a module, so this runs before the
 * first connection. Any V8 flag set at run time keeps Node from using the
 * code cache built into it for the Node modules loaded afterwards (they
 * took twice the CPU to load), so it is set here, once undici and what it
 * needs are loaded, and not when the process starts. It holds for every
 * WebAssembly module the process compiles afterwards, a plugin's included.
 */
export function deferWasmTierUp(): void {
  if (deferred) return;
  deferred = true;
  setFlagsFromString(`--wasm-tiering-budget=${WASM_TIERING_BUDGET}`);
}
