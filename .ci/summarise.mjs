// Reads vitest's JSON report and prints the final "N passed, N failed" line.
// Skipped tests count as failures in CI: they mean something was not checked.
import { existsSync, readFileSync } from 'node:fs';

const [file, statusText] = process.argv.slice(2);
const status = Number(statusText ?? 1);

if (!file || !existsSync(file)) {
  console.error(`no test report (${file}); npm test exited ${status} before or during vitest (type check or lint?)`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const report = JSON.parse(readFileSync(file, 'utf8'));
let passed = 0;
let failed = 0;
const skipped = [];
for (const suite of report.testResults ?? []) {
  for (const t of suite.assertionResults ?? []) {
    if (t.status === 'passed') passed++;
    else if (t.status === 'failed') failed++;
    else skipped.push(`${suite.name.replace(process.cwd() + '/', '')}: ${t.fullName}`);
  }
  // A file that failed to load has no assertion results but counts as a failure.
  if ((suite.assertionResults ?? []).length === 0 && suite.status === 'failed') failed++;
}
if (skipped.length > 0) {
  console.error(`${skipped.length} test(s) skipped; CI installs everything and runs as root, so none may skip:`);
  for (const s of skipped) console.error(`  skipped: ${s}`);
}
const bad = failed + skipped.length;
if (status !== 0 && bad === 0) {
  console.error(`npm test exited ${status} although every test passed`);
  console.log(`${passed} passed, 1 failed`);
  process.exit(1);
}
console.log(`${passed} passed, ${bad} failed`);
process.exit(bad === 0 && status === 0 ? 0 : 1);
