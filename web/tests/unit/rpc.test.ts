import { describe, expect, it } from 'vitest';
import { RpcClient, RpcError } from '../../src/core/rpc';

const reply = (body: object, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json', ...headers } });

describe('RpcClient', () => {
  it('posts same-origin JSON-RPC and returns the revision', async () => {
    let seen: { url: string; init: RequestInit } | undefined;
    const c = new RpcClient(async (url, init) => { seen = { url, init }; return reply({ jsonrpc: '2.0', id: 1, result: { ok: true } }, { 'x-patch-sequence': '12' }); });
    const r = await c.call('setup.status');
    expect(r).toEqual({ result: { ok: true }, revision: 12 });
    expect(seen!.url).toBe('/rpc/v1');
    expect(seen!.init.credentials).toBe('same-origin');
    expect(JSON.parse(String(seen!.init.body))).toMatchObject({ jsonrpc: '2.0', method: 'setup.status' });
  });
  it('turns errors into RpcError with retryAfter', async () => {
    const c = new RpcClient(async () => reply({ jsonrpc: '2.0', id: 1, error: { code: 7, message: 'incorrect password', data: { retryAfter: 8 } } }));
    const e = await c.call('auth.login', { password: 'x' }).catch((e: unknown) => e);
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).code).toBe(7);
    expect((e as RpcError).retryAfter).toBe(8);
  });
  it('reports a non-JSON answer clearly', async () => {
    const c = new RpcClient(async () => new Response('oops', { status: 502 }));
    await expect(c.call('x')).rejects.toThrow(/HTTP 502/);
  });
});
