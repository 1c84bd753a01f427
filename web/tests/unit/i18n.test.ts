import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { en } from '../../src/core/messages.en';
import { passwordProblem, hostnameProblem } from '../../src/core/validate';

function files(d: string): string[] {
  return readdirSync(d).flatMap((n: string) => { const p = join(d, n); return statSync(p).isDirectory() ? files(p) : [p]; });
}

describe('catalogue', () => {
  it('has every id the sources use', () => {
    const used = files('src').filter((f) => /\.(ts|svelte)$/.test(f))
      .flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/\bt\('([^']+)'/g)].map((m) => m[1]!));
    expect(used.length).toBeGreaterThan(10);
    expect(used.filter((id) => !(id in en))).toEqual([]);
  });
});

describe('setup rules', () => {
  it('checks password strength and hostname', () => {
    expect(passwordProblem('short')).toBe('setup.password.tooShort');
    expect(passwordProblem('aaaaaaaaaaaaaa')).toBe('setup.password.weak');
    expect(passwordProblem('correct horse battery')).toBe(null);
    expect(hostnameProblem('my-hearth')).toBe(null);
    expect(hostnameProblem('-bad')).toBe('setup.hostname.invalid');
    expect(hostnameProblem('Upper')).toBe('setup.hostname.invalid');
  });
});
