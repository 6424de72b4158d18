/**
 * Imported first by bin/aproxy, before anything else loads: until the
 * proxy installs its own handler, SIGHUP would end the process (Node's
 * default action, which systemd counts as a clean exit). It is held here
 * instead and handed over.
 */
let held = 0;
const hold = () => {
  held++;
};
process.on('SIGHUP', hold);

/** How many SIGHUPs arrived before anyone could act on them; the holding handler goes. */
export function takeEarlyHangups(): number {
  process.off('SIGHUP', hold);
  const n = held;
  held = 0;
  return n;
}
