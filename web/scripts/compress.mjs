// Writes precompressed siblings (x.br, x.gz) of every text asset in DIR, as hearthd's
// --web-dir serving sends them when the browser accepts them. Node's zlib only.
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const dir = process.argv[2] ?? 'dist';
const TEXT = /\.(js|mjs|css|html|svg|json|txt|webmanifest)$/;

function walk(d) {
  for (const name of readdirSync(d)) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (TEXT.test(name)) {
      const raw = readFileSync(p);
      const br = brotliCompressSync(raw, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
      });
      const gz = gzipSync(raw, { level: 9 });
      if (br.length < raw.length) writeFileSync(p + '.br', br);
      if (gz.length < raw.length) writeFileSync(p + '.gz', gz);
    }
  }
}
walk(dir);
