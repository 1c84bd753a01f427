// JSON-RPC 2.0 over `POST /rpc/v1`, same origin only: the browser sends the session
// cookie and its own Origin, which hearthd requires to match Host (a cookie-bearing
// request from another origin is refused). No token is ever kept in JS.

export const RPC_PATH = '/rpc/v1';
/// Error codes of hearth-rpc the UI reacts to.
export const ErrorCodes = { incorrectPassword: 7, unauthorized: 34, rateLimited: 37 } as const;

export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message);
  }
  /** Seconds to wait before retrying, when the server said so. */
  get retryAfter(): number | undefined {
    const v = this.data['retryAfter'];
    return typeof v === 'number' ? v : undefined;
  }
}

export interface CallResult<T> {
  result: T;
  /** The state revision the call produced (wait for it in the mirror before showing). */
  revision?: number;
}

export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

export class RpcClient {
  private nextId = 1;
  constructor(private readonly fetchFn: Fetch = (i, r) => fetch(i, r)) {}

  async call<T = unknown>(method: string, params?: unknown): Promise<CallResult<T>> {
    const body = JSON.stringify({ jsonrpc: '2.0', id: this.nextId++, method, params: params ?? {} });
    let res: Response;
    try {
      res = await this.fetchFn(RPC_PATH, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body,
      });
    } catch (e) {
      throw new RpcError(-1, `network error: ${e instanceof Error ? e.message : String(e)}`);
    }
    let json: unknown;
    try {
      json = await res.json();
    } catch {
      throw new RpcError(-1, `HTTP ${res.status}: not a JSON-RPC response`);
    }
    const o = json as { result?: T; error?: { code: number; message: string; data?: Record<string, unknown> }; revision?: number };
    if (o.error) throw new RpcError(o.error.code, o.error.message, o.error.data ?? {});
    if (!('result' in o)) throw new RpcError(-1, 'response has neither result nor error');
    const header = res.headers.get('x-patch-sequence');
    const revision = typeof o.revision === 'number' ? o.revision : header ? Number(header) : undefined;
    return { result: o.result as T, revision };
  }
}
