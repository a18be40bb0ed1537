/**
 * Builds dist/ once before the tests: the namespace tests run the real
 * `ftp-alg` binary inside namespaces, and it must be the code under test,
 * not whatever an earlier build left.
 */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
