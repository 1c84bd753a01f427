// RFC 6902 JSON Patch, the subset hearth-store emits (add, remove, replace), applied
// without mutating the input: changed containers along each path are copied, the rest
// is shared. Anything else (unknown op, missing parent, bad index) throws PatchError,
// and the state mirror then asks for a fresh dump instead of guessing.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type PatchOp =
  | { op: 'add'; path: string; value: Json }
  | { op: 'replace'; path: string; value: Json }
  | { op: 'remove'; path: string };

export class PatchError extends Error {}

export function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`bad pointer ${JSON.stringify(path)}`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function index(arr: Json[], key: string, forAdd: boolean): number {
  if (forAdd && key === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(key)) throw new PatchError(`bad array index ${key}`);
  const i = Number(key);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new PatchError(`index ${i} out of range`);
  return i;
}

function applyOne(doc: Json, op: PatchOp): Json {
  const keys = parsePointer(op.path);
  if (keys.length === 0) {
    if (op.op === 'remove') throw new PatchError('cannot remove the root');
    return op.value;
  }
  const rec = (node: Json, depth: number): Json => {
    const key = keys[depth] as string;
    const last = depth === keys.length - 1;
    if (Array.isArray(node)) {
      const copy = node.slice();
      if (last) {
        if (op.op === 'add') copy.splice(index(copy, key, true), 0, op.value);
        else if (op.op === 'replace') copy[index(copy, key, false)] = op.value;
        else copy.splice(index(copy, key, false), 1);
      } else {
        const i = index(copy, key, false);
        copy[i] = rec(copy[i] as Json, depth + 1);
      }
      return copy;
    }
    if (node !== null && typeof node === 'object') {
      const copy = { ...node };
      if (last) {
        if (op.op !== 'add' && !Object.hasOwn(copy, key)) throw new PatchError(`${op.op}: no ${op.path}`);
        if (op.op === 'remove') delete copy[key];
        else copy[key] = op.value;
      } else {
        if (!Object.hasOwn(copy, key)) throw new PatchError(`no parent for ${op.path}`);
        copy[key] = rec(copy[key] as Json, depth + 1);
      }
      return copy;
    }
    throw new PatchError(`${op.path}: parent is not a container`);
  };
  return rec(doc, 0);
}

export function applyPatch(doc: Json, ops: readonly PatchOp[]): Json {
  let out = doc;
  for (const op of ops) {
    if (op.op !== 'add' && op.op !== 'replace' && op.op !== 'remove') {
      throw new PatchError(`unsupported op ${JSON.stringify((op as { op: unknown }).op)}`);
    }
    out = applyOne(out, op);
  }
  return out;
}
