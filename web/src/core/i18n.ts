// Every user-visible string comes from a catalogue keyed by stable ids. The English
// catalogue is bundled; `MessageId` is its key type, so a missing key fails
// type-checking (svelte-check / tsc) and the unit test that scans the sources.
import { en } from './messages.en';

export type MessageId = keyof typeof en;

export function t(id: MessageId, params: Record<string, string | number> = {}): string {
  return en[id].replace(/\{(\w+)\}/g, (_, k: string) => String(params[k] ?? `{${k}}`));
}
