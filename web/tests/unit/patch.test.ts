import { describe, expect, it } from 'vitest';
import { applyPatch, PatchError } from '../../src/core/patch';

describe('applyPatch', () => {
  it('applies add, replace and remove without mutating the input', () => {
    const doc = { a: { b: 1, c: [1, 2, 3] }, 'f~/': 0 };
    const out = applyPatch(doc, [
      { op: 'replace', path: '/a/b', value: 2 },
      { op: 'remove', path: '/a/c/1' },
      { op: 'add', path: '/a/c/-', value: 9 },
      { op: 'add', path: '/new', value: { x: null } },
      { op: 'replace', path: '/f~0~1', value: 5 },
    ]);
    expect(out).toEqual({ a: { b: 2, c: [1, 3, 9] }, 'f~/': 5, new: { x: null } });
    expect(doc).toEqual({ a: { b: 1, c: [1, 2, 3] }, 'f~/': 0 });
  });
  it('refuses what does not apply', () => {
    expect(() => applyPatch({}, [{ op: 'remove', path: '/gone' }])).toThrow(PatchError);
    expect(() => applyPatch({}, [{ op: 'add', path: '/a/b', value: 1 }])).toThrow(PatchError);
    expect(() => applyPatch({ a: [] }, [{ op: 'replace', path: '/a/0', value: 1 }])).toThrow(PatchError);
    expect(() => applyPatch({}, [{ op: 'move', path: '/a' } as never])).toThrow(/unsupported op/);
  });
});
