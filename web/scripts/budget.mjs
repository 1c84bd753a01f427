// Size budgets over the built UI (issue 12 point 5): the JS and CSS index.html loads
// up front ≤ 120 KiB gzip, all of dist/ ≤ 3 MB. Exits 1 naming what is over.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dir = process.argv[2] ?? 'dist';
const INITIAL_MAX = 120 * 1024;
const DIST_MAX = 3 * 1000 * 1000;

const html = readFileSync(join(dir, 'index.html'), 'utf8');
const refs = [...html.matchAll(/(?:src|href)="\/([^"]+\.(?:js|css))"/g)].map((m) => m[1]);
if (refs.length === 0) {
  console.error('budget: index.html references no JS or CSS');
  process.exit(1);
}
let initial = 0;
for (const r of refs) initial += gzipSync(readFileSync(join(dir, r)), { level: 9 }).length;

let total = 0;
const walk = (d) => {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    const s = statSync(p);
    if (s.isDirectory()) walk(p);
    else total += s.size;
  }
};
walk(dir);

const kib = (n) => (n / 1024).toFixed(1) + ' KiB';
console.log(`budget: initial JS+CSS ${kib(initial)} gzip (max ${kib(INITIAL_MAX)}; ${refs.join(', ')}); dist ${kib(total)} (max ${kib(DIST_MAX)})`);
let ok = true;
if (initial > INITIAL_MAX) { console.error('budget: initial JS+CSS over budget'); ok = false; }
if (total > DIST_MAX) { console.error('budget: dist over budget'); ok = false; }
process.exit(ok ? 0 : 1);
