// Starts and stops the real hearthd for the browser tests: HEARTHD (the binary),
// HEARTH_DATA (a fresh data dir), HEARTHD_ERR (its stderr file), --web-dir web/dist.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { resolve } from 'node:path';

const need = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run ci/systest/web.sh)`);
  return v;
};

export class Hearthd {
  private child: ChildProcess | null = null;
  url = '';

  async start(listen = '127.0.0.1:0'): Promise<string> {
    const err = openSync(need('HEARTHD_ERR'), 'a');
    const child = spawn(need('HEARTHD'), [
      '--data-dir', need('HEARTH_DATA'), '--listen', listen,
      '--container-init', '/usr/lib/hearth/hearth-container',
      '--web-dir', resolve('dist'),
    ], { stdio: ['ignore', 'pipe', err] });
    this.child = child;
    this.url = await new Promise<string>((ok, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error(`hearthd did not announce its address: ${out}`)), 10_000);
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^hearthd listening on (http:\S+)/m.exec(out);
        if (m?.[1]) { clearTimeout(timer); ok(m[1]); }
      });
      child.on('exit', (c) => { clearTimeout(timer); fail(new Error(`hearthd exited (${c}): ${out}`)); });
    });
    return this.url;
  }

  async stop(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((ok) => c.once('exit', ok));
    c.kill('SIGTERM');
    await exited;
  }
}
