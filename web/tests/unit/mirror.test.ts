import { describe, expect, it } from 'vitest';
import { StateMirror, type SocketLike } from '../../src/core/mirror';

class FakeSocket implements SocketLike {
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  closed: number | null = null;
  constructor(readonly url: string) {}
  send(f: object) { this.onmessage?.({ data: JSON.stringify(f) }); }
  close(code = 1000) { this.closed = code; }
  drop(code = 1006) { this.onclose?.({ code }); }
}

function setup() {
  const sockets: FakeSocket[] = [];
  const timers: (() => void)[] = [];
  const m = new StateMirror('ws://h/ws/db', (u) => { const s = new FakeSocket(u); sockets.push(s); return s; },
    { set: (fn) => timers.push(fn), clear: () => {} });
  return { m, sockets, timers };
}

describe('StateMirror', () => {
  it('applies a dump, then patches in order, and skips old revisions', async () => {
    const { m, sockets } = setup();
    m.start();
    const s = sockets[0]!;
    s.onopen?.({});
    s.send({ rev: 3, value: { packageData: {} } });
    const waited = m.waitFor(5);
    s.send({ rev: 5, patch: [{ op: 'add', path: '/packageData/a', value: { x: 1 } }] });
    await waited;
    s.send({ rev: 4, patch: [{ op: 'remove', path: '/packageData' }] });
    expect(m.current).toMatchObject({ rev: 5, connected: true, value: { packageData: { a: { x: 1 } } } });
  });
  it('reports a closed socket and reconnects with since', () => {
    const { m, sockets, timers } = setup();
    m.start();
    sockets[0]!.onopen?.({});
    sockets[0]!.send({ rev: 7, value: {} });
    sockets[0]!.drop();
    expect(m.current.connected).toBe(false);
    timers.shift()!();
    expect(sockets[1]!.url).toBe('ws://h/ws/db?since=7');
  });
  it('asks for a fresh dump when a patch does not apply', () => {
    const { m, sockets } = setup();
    m.start();
    sockets[0]!.send({ rev: 1, value: {} });
    sockets[0]!.send({ rev: 2, patch: [{ op: 'remove', path: '/nope' }] });
    expect(sockets[0]!.closed).toBe(1000);
    expect(sockets[1]!.url).toBe('ws://h/ws/db');
    expect(m.current.rev).toBe(1);
  });
});
