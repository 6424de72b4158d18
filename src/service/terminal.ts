/**
 * Characters a terminal acts on rather than shows: C0 and C1 controls (ESC
 * starts colour and OSC 52 clipboard sequences; CR and LF would forge
 * lines), DEL, the Unicode line and paragraph separators, and bidirectional
 * overrides that reorder what the operator reads.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE_FOR_TERMINAL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Shows text from a guest or a server on a terminal as visible escapes, so one event stays one line. */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE_FOR_TERMINAL, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** Text of our own that may span lines: each line shown escaped, so only our newlines break it. */
export function escapeLinesForTerminal(text: string): string {
  return text.split('\n').map(escapeForTerminal).join('\n');
}
