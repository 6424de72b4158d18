import { setFlagsFromString } from 'node:v8';

/**
 * Keeps every WebAssembly function on V8's baseline compiler (Liftoff): no
 * tier-up, neither when a function is hot (dynamic tiering) nor for the
 * whole module in the background (what V8 does without dynamic tiering).
 * `--liftoff-only` is V8's testing flag for the same, and Node 24 ignores
 * it when set at run time.
 */
export const WASM_BASELINE_FLAGS = '--no-wasm-tier-up --no-wasm-dynamic-tiering';

let set = false;

/**
 * undici parses HTTP with llhttp compiled to WebAssembly, when its first
 * connection opens. V8 runs wasm from its baseline compiler and moves a
 * function that has spent its tiering budget to TurboFan on a background
 * thread. llhttp's parser is one large function: optimising it cost 70–160
 * ms of CPU and 7–13 MiB of memory, within the first exchanges by default
 * and after 200–400 with the largest budget V8 takes, so during the boot
 * storm after every start. Optimised, it saved nothing a benchmark could
 * see (docs/performance.md).
 *
 * V8 reads this when it compiles a module, so it is set before the first
 * connection. Any V8 flag set at run time keeps Node from using the code
 * cache built into it for the Node modules loaded afterwards (they took
 * twice the CPU to load), so it is set once undici and what it needs are
 * loaded, not when the process starts. It holds for every WebAssembly
 * module the process compiles afterwards, a plugin's included.
 */
export function keepWasmOnBaseline(): void {
  if (set) return;
  set = true;
  setFlagsFromString(WASM_BASELINE_FLAGS);
}
