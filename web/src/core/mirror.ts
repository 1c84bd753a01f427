// A mirror of hearthd's public state over `GET /ws/db`: a dump `{rev, value}` first
// (or, reconnecting with `?since=REV`, the missed revisions), then `{rev, patch}` in
// order. A patch that does not apply or a frame that is not understood drops the
// socket and reconnects without `since`, so the server sends a fresh dump. A closed
// socket is reported at once (the UI's "reconnecting" banner) and retried with
// backoff. `waitFor(rev)` resolves once the mirror has reached a call's revision.

import { applyPatch, PatchError, type Json, type PatchOp } from './patch';

export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(code?: number): void;
}
export type SocketFactory = (url: string) => SocketLike;

export interface MirrorState {
  /** Last applied revision (0: nothing received yet). */
  rev: number;
  value: Json | undefined;
  connected: boolean;
  /** Close code of the last socket close (1008: the session ended). */
  lastClose?: number;
}

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const defaultTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class StateMirror {
  private state: MirrorState = { rev: 0, value: undefined, connected: false };
  private socket: SocketLike | null = null;
  private listeners = new Set<(s: MirrorState) => void>();
  private waiters: { rev: number; resolve: () => void }[] = [];
  private retry: unknown = null;
  private attempts = 0;
  private stopped = true;
  private fresh = false;

  constructor(
    private readonly url: string,
    private readonly open: SocketFactory,
    private readonly timers: Timers = defaultTimers,
  ) {}

  get current(): MirrorState {
    return this.state;
  }

  subscribe(fn: (s: MirrorState) => void): () => void {
    this.listeners.add(fn);
    fn(this.state);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry !== null) this.timers.clear(this.retry);
    this.retry = null;
    const s = this.socket;
    this.socket = null;
    s?.close(1000);
    this.set({ connected: false });
  }

  /** Resolves once revision `rev` (or a later one) has been applied. */
  waitFor(rev: number | undefined): Promise<void> {
    if (rev === undefined || this.state.rev >= rev) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ rev, resolve }));
  }

  private set(patch: Partial<MirrorState>): void {
    this.state = { ...this.state, ...patch };
    const ready = this.waiters.filter((w) => w.rev <= this.state.rev);
    this.waiters = this.waiters.filter((w) => w.rev > this.state.rev);
    for (const w of ready) w.resolve();
    for (const l of this.listeners) l(this.state);
  }

  private connect(): void {
    const since = this.state.rev > 0 && !this.fresh ? `?since=${this.state.rev}` : '';
    this.fresh = false;
    const s = this.open(this.url + since);
    this.socket = s;
    s.onopen = () => {
      if (this.socket !== s) return;
      this.attempts = 0;
      this.set({ connected: true });
    };
    s.onmessage = (ev) => {
      if (this.socket === s) this.frame(s, ev.data);
    };
    s.onerror = () => {};
    s.onclose = (ev) => {
      if (this.socket !== s) return;
      this.socket = null;
      this.set({ connected: false, lastClose: ev.code });
      if (!this.stopped) this.schedule();
    };
  }

  private schedule(): void {
    const delay = Math.min(500 * 2 ** this.attempts, 10_000);
    this.attempts++;
    this.retry = this.timers.set(() => {
      this.retry = null;
      if (!this.stopped) this.connect();
    }, delay);
  }

  private frame(s: SocketLike, data: unknown): void {
    try {
      if (typeof data !== 'string') throw new PatchError('binary frame');
      const f = JSON.parse(data) as { rev?: unknown; value?: Json; patch?: PatchOp[] };
      if (typeof f.rev !== 'number') throw new PatchError('frame without rev');
      if ('value' in f) {
        this.set({ rev: f.rev, value: f.value });
      } else if (Array.isArray(f.patch)) {
        if (f.rev <= this.state.rev) return; // already have it
        if (this.state.value === undefined) throw new PatchError('patch before any dump');
        this.set({ rev: f.rev, value: applyPatch(this.state.value, f.patch) });
      } else {
        throw new PatchError('frame is neither a dump nor a patch');
      }
    } catch (e) {
      // Out of step: start over from a fresh dump.
      console.warn('state stream: resyncing', e);
      this.fresh = true;
      s.close(1000);
      if (this.socket === s) {
        this.socket = null;
        this.set({ connected: false });
        if (!this.stopped) this.connect();
      }
    }
  }
}

export function wsUrl(loc: { protocol: string; host: string }, path = '/ws/db'): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}${path}`;
}

/** A browser WebSocket behind the narrow SocketLike interface. */
export function browserSocket(url: string): SocketLike {
  const ws = new WebSocket(url);
  const s: SocketLike = {
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
    close: (code) => ws.close(code),
  };
  ws.onopen = (e) => s.onopen?.(e);
  ws.onmessage = (e) => s.onmessage?.({ data: e.data });
  ws.onclose = (e) => s.onclose?.({ code: e.code });
  ws.onerror = (e) => s.onerror?.(e);
  return s;
}
