// Writes docs/ftp-alg.8 from the flag table (npm run man; needs npm run build first).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { renderManPage } from '../dist/man.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
mkdirSync(new URL('../docs/', import.meta.url), { recursive: true });
writeFileSync(new URL('../docs/ftp-alg.8', import.meta.url), renderManPage(version));
