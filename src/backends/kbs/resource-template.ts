import { AttestationRejectedError, ConfigError } from '../../protocol/errors.js';
import type { SnpReport } from '../../protocol/snp-report.js';
import { LISTENER_NAME, type SessionInfo } from '../contract.js';

/**
 * The backend option `resource` as a template, so each guest asks for its own secret:
 * `vtpm/keys/{host_data}`. Fields from the guest's SNP report are attested,
 * so the KBS can check the path against the evidence (a Trustee resource
 * policy that releases `vtpm/keys/<tag>` only when `<tag>` equals the
 * token's host_data); the transport's fields are the host's say-so.
 */
export const TEMPLATE_FIELDS = {
  host_data: { attested: true, describe: 'the 32 bytes the host set at launch (QEMU sev-snp-guest host-data=), lowercase hex' },
  measurement: { attested: true, describe: 'the launch measurement, 96 hex digits' },
  report_id: { attested: true, describe: "the report's REPORT_ID, 64 hex digits" },
  chip_id: { attested: true, describe: 'the CHIP_ID of the processor, 128 hex digits' },
  cid: { attested: false, describe: "the vsock peer's CID, decimal (vsock listeners only)" },
  listener: { attested: false, describe: "the listener's configured name" },
} as const;
export type TemplateField = keyof typeof TEMPLATE_FIELDS;

export interface ResourceTemplate {
  readonly source: string;
  /** Literal text and fields, in order. */
  readonly parts: ReadonlyArray<{ readonly text: string } | { readonly field: TemplateField }>;
  readonly fields: ReadonlySet<TemplateField>;
}

/**
 * The longest template taken. A KBS resource path is a few segments; every
 * session builds one, so a huge template costs its size per session.
 */
export const MAX_RESOURCE_TEMPLATE_CHARS = 1024;

/** Checks a template once, at start (or reload): its length, unknown fields, stray braces and unsafe literals. */
export function parseResourceTemplate(source: string): ResourceTemplate {
  if (source.length > MAX_RESOURCE_TEMPLATE_CHARS) {
    throw new ConfigError(
      `backend option resource: ${source.length} characters, more than the ${MAX_RESOURCE_TEMPLATE_CHARS} a resource path may have (it starts ${JSON.stringify(source.slice(0, 40))})`,
    );
  }
  const parts: Array<{ text: string } | { field: TemplateField }> = [];
  const fields = new Set<TemplateField>();
  const re = /\{([^{}]*)\}|([^{}]+)|([{}])/g;
  for (let m = re.exec(source); m !== null; m = re.exec(source)) {
    if (m[3] !== undefined)
      throw new ConfigError(`backend option resource ${JSON.stringify(source)}: a lone "${m[3]}" (fields are written {host_data})`);
    if (m[2] !== undefined) {
      parts.push({ text: m[2] });
      continue;
    }
    const name = m[1] ?? '';
    if (!Object.hasOwn(TEMPLATE_FIELDS, name)) {
      throw new ConfigError(
        `backend option resource ${JSON.stringify(source)}: unknown field {${name}}; fields: ${Object.keys(TEMPLATE_FIELDS)
          .map((f) => `{${f}}`)
          .join(', ')}`,
      );
    }
    parts.push({ field: name as TemplateField });
    fields.add(name as TemplateField);
  }
  const template = { source, parts, fields };
  // The literal parts must already make a safe path; the field values are checked per guest.
  checkPath(
    source,
    render(template, () => 'x'),
  );
  return template;
}

/** The resource path for one guest. Refuses the guest (never a fallback path) when a field has no safe value. */
export function resolveResource(template: ResourceTemplate, report: SnpReport | undefined, peer: SessionInfo['peer']): string {
  const value = (field: TemplateField): string => {
    switch (field) {
      case 'host_data':
      case 'measurement':
      case 'report_id':
      case 'chip_id': {
        if (report === undefined)
          throw new AttestationRejectedError(`resource template needs {${field}} but the evidence has no SNP report`);
        const key = ({ host_data: 'hostData', measurement: 'measurement', report_id: 'reportId', chip_id: 'chipId' } as const)[field];
        return Buffer.from(report[key]).toString('hex');
      }
      case 'cid':
        if (peer?.cid === undefined)
          throw new ConfigError(
            `resource template ${JSON.stringify(template.source)} uses {cid}, but this guest came over ${peer?.transport ?? 'a transport'} without one`,
          );
        return String(peer.cid);
      case 'listener':
        if (peer === undefined || !LISTENER_NAME.test(peer.listener))
          throw new ConfigError(`listener name ${JSON.stringify(peer?.listener)} cannot go into a resource path`);
        return peer.listener;
    }
  };
  const path = render(template, value);
  checkPath(template.source, path);
  return path;
}

function render(t: ResourceTemplate, value: (f: TemplateField) => string): string {
  return t.parts.map((p) => ('text' in p ? p.text : value(p.field))).join('');
}

/** `<repository>/<type>/<tag>`-like: no empty or dot segments, no percent-encoding, no leading slash. */
function checkPath(source: string, path: string): void {
  const segments = path.split('/');
  if (path.includes('%') || path.includes('\\') || segments.some((s) => s === '' || s === '.' || s === '..') || /[\s?#]/.test(path)) {
    throw new ConfigError(
      `backend option resource ${JSON.stringify(source)} gives the unsafe path ${JSON.stringify(path)} (no empty, "." or ".." segments, no %, ?, #, \\ or spaces)`,
    );
  }
}
