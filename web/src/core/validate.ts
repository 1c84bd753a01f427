// Form rules of the setup wizard, as the server applies them (hearth-rpc
// check_password / check_hostname), plus the UI's stricter strength rule.
import type { MessageId } from './i18n';

export const MIN_PASSWORD = 12;

/** The first problem with a new password, or null. */
export function passwordProblem(pw: string): MessageId | null {
  if ([...pw].length < MIN_PASSWORD) return 'setup.password.tooShort';
  if (new TextEncoder().encode(pw).length > 1024) return 'setup.password.tooLong';
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/].filter((r) => r.test(pw)).length;
  if (classes < 2) return 'setup.password.weak';
  return null;
}

export function hostnameProblem(h: string): MessageId | null {
  if (!/^[a-z0-9-]{1,63}$/.test(h) || h.startsWith('-') || h.endsWith('-')) return 'setup.hostname.invalid';
  return null;
}
