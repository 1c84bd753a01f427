// What the app does at start and on auth changes, framework-neutral: find out whether
// setup is done and whether we are logged in; log in, log out, complete setup.
import { ErrorCodes, RpcClient, RpcError } from './rpc';

export type Phase = 'setup' | 'login' | 'ready';

export class Session {
  constructor(readonly rpc: RpcClient) {}

  async phase(): Promise<Phase> {
    const { result } = await this.rpc.call<{ setupComplete: boolean }>('setup.status');
    if (!result.setupComplete) return 'setup';
    try {
      await this.rpc.call('server.info');
      return 'ready';
    } catch (e) {
      if (e instanceof RpcError && e.code === ErrorCodes.unauthorized) return 'login';
      throw e;
    }
  }

  async login(password: string): Promise<void> {
    await this.rpc.call('auth.login', { password });
  }

  async logout(): Promise<void> {
    await this.rpc.call('auth.logout');
  }

  /** `setupCode` is sent only when given (servers that ask for one). */
  async completeSetup(password: string, hostname: string, setupCode?: string): Promise<void> {
    const params: Record<string, string> = { password, hostname };
    if (setupCode) params['setupCode'] = setupCode;
    await this.rpc.call('setup.complete', params);
  }
}
