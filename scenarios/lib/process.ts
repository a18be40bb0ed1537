/**
 * Process helpers shared by the scenario runner and the namespace tests
 * (test/helpers/netns.ts). No side effects on import.
 */
import { readFileSync } from 'node:fs';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls cond every everyMs until true or timeoutMs has passed; bounded in rounds and time. */
export async function pollUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const rounds = Math.ceil(timeoutMs / everyMs) + 2;
  for (let i = 0; i < rounds; i++) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await pause(everyMs);
  }
  return false;
}

/** Alive = exists and is not a zombie (a zombie lingers until reaped; kill -0 would call it alive). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
