// The services list as the page shows it, read from the mirrored public state
// (`packageData.<id>`: manifest, statusInfo). Only the fields this page needs; the
// generated state types (issue 12 point 2) will replace these reads.
import type { Json } from './patch';

export interface ServiceRow {
  id: string;
  title: string;
  version: string;
  status: string | null;
}

const obj = (v: Json | undefined): Record<string, Json> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
const str = (v: Json | undefined): string | null => (typeof v === 'string' ? v : null);

export function serviceRows(state: Json | undefined): ServiceRow[] {
  const pkgs = obj(obj(state)?.['packageData']);
  if (!pkgs) return [];
  return Object.entries(pkgs)
    .map(([id, entry]) => {
      const e = obj(entry);
      const m = obj(e?.['manifest']);
      const s = obj(e?.['statusInfo']);
      return {
        id,
        title: str(m?.['title']) ?? id,
        version: str(m?.['version']) ?? '',
        status: str(s?.['state']) ?? str(obj(e?.['stateInfo'])?.['state']),
      };
    })
    .sort((a, b) => a.title.localeCompare(b.title));
}
