/**
 * Issue 13 "Done when": `ftp-alg run --config` with two listeners and the
 * admin endpoint; a slow transfer in flight while the file is edited (a
 * listener added, one removed, a limit changed) and SIGHUP is sent: the
 * transfer completes byte-exact, the new listener serves, the removed one
 * refuses, the PID is the same, /metrics counts the transfer's data
 * connection and the reload; then an invalid edit + SIGHUP changes nothing
 * and logs the key.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { spawnSync } from 'node:child_process';
import { HAVE, randomFile, run, tempDir } from '../helpers/tools.js';
import { CLI, freePort, heldDownload, httpGet, metric, startGatewayProcess } from './ops-process.js';

const BIG = randomFile(8 << 20);
let server: DemoServer;
const dir = tempDir('ftp-alg-ops-reload-');
beforeAll(async () => {
  server = await startDemoServer({ files: { '/big.bin': BIG } });
});
afterAll(async () => {
  await server?.close();
  dir.remove();
});

function listenerYaml(name: string, port: number, extra: string[] = []): string[] {
  return [`  - mode: reverse`, `    name: ${name}`, `    listen: 127.0.0.1:${port}`, `    server: 127.0.0.1:${server.address.port}`, `    public-address: 127.0.0.1`, ...extra.map((l) => `    ${l}`)];
}

/** Resolves with the first reply code, or the connect error's code. */
async function greeting(port: number): Promise<string> {
  try {
    const c = await FtpClient.connect('127.0.0.1', port);
    try {
      const r = await c.read();
      return String(r.code);
    } finally {
      c.close();
    }
  } catch (err) {
    return /ECONNREFUSED/.test((err as Error).message) ? 'ECONNREFUSED' : (err as Error).message;
  }
}

async function loginWorks(port: number): Promise<boolean> {
  const c = await FtpClient.connect('127.0.0.1', port);
  try {
    await c.login();
    return true;
  } finally {
    await c.quit();
  }
}

test('run --config: SIGHUP adds, removes and changes listeners while a transfer runs; an invalid edit changes nothing', async () => {
  const [portA, portB, portC, admin] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const file = join(dir.path, 'ftp-alg.yaml');
  const write = (lines: string[]) => writeFileSync(file, lines.join('\n') + '\n');
  write(['drain: 30', `admin-listen: 127.0.0.1:${admin}`, 'listeners:', ...listenerYaml('a', portA, ['max-sessions: 1']), ...listenerYaml('b', portB)]);

  expect((await run(process.execPath, [CLI, 'run', '--config', file, '--check'])).code).toBe(0);
  const gw = startGatewayProcess(['run', '--config', file]);
  try {
    await gw.waitFor((e) => e.event === 'listening' && e.listener === 'b', 'listener b');
    await gw.waitFor((e) => e.event === 'listening' && e.listener === 'a', 'listener a');
    expect((await httpGet(admin, '/readyz')).status).toBe(200);
    expect((await httpGet(admin, '/healthz')).status).toBe(200);

    const held = await heldDownload(portA, '/big.bin');
    // max-sessions: 1 on a — the held session is the one.
    expect(await greeting(portA)).toBe('421');

    // Edit: b removed, c added, a's limit raised.
    write(['drain: 30', `admin-listen: 127.0.0.1:${admin}`, 'listeners:', ...listenerYaml('a', portA, ['max-sessions: 3']), ...listenerYaml('c', portC)]);
    gw.child.kill('SIGHUP');
    const reload = await gw.waitFor((e) => e.event === 'reload', 'reload event');
    expect(reload).toMatchObject({ file, added: ['c'], removed: ['b'], changed: ['a'] });

    expect(await loginWorks(portC)).toBe(true);
    expect(await greeting(portB)).toBe('ECONNREFUSED');
    // The new limit holds for new sessions; the held one still runs on the old settings.
    expect(await loginWorks(portA)).toBe(true);

    const { data, final } = await held.finish();
    expect(final).toBe(226);
    expect(data.length).toBe(BIG.length);
    expect(data.equals(BIG)).toBe(true);
    await held.client.quit();
    // The transfer's session carried listener a's name to its end.
    const opened = gw.events.find((e) => e.event === 'data-open');
    expect(opened?.listener).toBe('a');

    // Invalid edit: nothing changes, the key is named.
    write(['drain: 30', `admin-listen: 127.0.0.1:${admin}`, 'listeners:', ...listenerYaml('a', portA, ['max-sessions: -1'])]);
    gw.child.kill('SIGHUP');
    const failed = await gw.waitFor((e) => e.event === 'reload-failed', 'reload-failed event');
    expect(failed).toMatchObject({ file, key: 'listeners[0].max-sessions' });
    expect(await loginWorks(portC)).toBe(true);
    expect(await greeting(portB)).toBe('ECONNREFUSED');

    const text = (await httpGet(admin, '/metrics')).body;
    expect(metric(text, 'ftp_alg_reloads_total', { result: 'ok' })).toBe(1);
    expect(metric(text, 'ftp_alg_reloads_total', { result: 'failed' })).toBe(1);
    expect(metric(text, 'ftp_alg_data_connections_total', { listener: 'a', mode: 'passive', data_path: 'relay' })).toBe(1);
    expect(metric(text, 'ftp_alg_sessions_total', { listener: 'c' })).toBe(2);
    expect(metric(text, 'ftp_alg_refusals_total', { listener: 'a', code: 'TOO_MANY_SESSIONS' })).toBe(1);
    // The session refused at once still opened first, so its client is logged.
    const refused = gw.events.find((e) => e.event === 'refuse' && e.code === 'TOO_MANY_SESSIONS')!;
    expect(gw.events.find((e) => e.session === refused.session)).toMatchObject({ event: 'session-open', client: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    expect(metric(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    // Same process throughout.
    expect(gw.child.exitCode).toBeNull();
    expect(new Set(gw.events.filter((e) => typeof e.session === 'string').map((e) => String(e.session).split('-')[0])).size).toBe(1);
    gw.child.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
  } finally {
    await gw.kill();
  }
});

test('/metrics counts a transfer held across a reload (ftp_alg_transfers_total, _bytes_total, _duration_seconds)', async () => {
  const [port, admin] = [await freePort(), await freePort()];
  const file = join(dir.path, 'metrics.yaml');
  const write = (limit: number) => writeFileSync(file, [`admin-listen: 127.0.0.1:${admin}`, 'listeners:', ...listenerYaml('m', port, [`max-sessions: ${limit}`])].join('\n') + '\n');
  write(5);
  const gw = startGatewayProcess(['run', '--config', file]);
  try {
    await gw.waitFor((e) => e.event === 'listening', 'listening');
    const held = await heldDownload(port, '/big.bin');
    write(6);
    gw.child.kill('SIGHUP');
    await gw.waitFor((e) => e.event === 'reload', 'reload');
    const { data, final } = await held.finish();
    expect(final).toBe(226);
    expect(data.equals(BIG)).toBe(true);
    await gw.waitFor((e) => e.event === 'transfer', 'transfer event');
    const text = (await httpGet(admin, '/metrics')).body;
    expect(metric(text, 'ftp_alg_transfers_total', { listener: 'm', direction: 'download', result: 'ok' })).toBe(1);
    expect(metric(text, 'ftp_alg_transfer_bytes_total', { listener: 'm', direction: 'download' })).toBe(BIG.length);
    expect(metric(text, 'ftp_alg_transfer_duration_seconds_count', { listener: 'm', direction: 'download' })).toBe(1);
    expect(metric(text, 'ftp_alg_logins_total', { listener: 'm', result: 'ok' })).toBe(1);
    await held.client.quit();
  } finally {
    await gw.kill();
  }
});

test('run --config F --check: 0 and one line for a valid file, 2 and one line naming the key for an invalid one', async () => {
  const ok = join(dir.path, 'ok.yaml');
  writeFileSync(ok, ['listeners:', ...listenerYaml('only', 2121)].join('\n'));
  const r1 = await run(process.execPath, [CLI, 'run', '--config', ok, '--check']);
  expect(r1.code).toBe(0);
  expect(r1.stdout.toString()).toBe(`ftp-alg: ${ok}: ok (1 listener: only)\n`);
  const bad = join(dir.path, 'bad.yaml');
  writeFileSync(bad, ['admin-listen: 0.0.0.0:9121', 'listeners:', ...listenerYaml('only', 2121)].join('\n'));
  const r2 = await run(process.execPath, [CLI, 'run', '--config', bad, '--check']);
  expect(r2.code).toBe(2);
  expect(r2.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^ftp-alg: ${bad}: admin-listen: "0.0.0.0:9121" is a wildcard`))]);
  // --check binds nothing: the port is still free for anyone.
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(2121, '127.0.0.1', () => resolve()));
  probe.close();
});

const kernelSkip = HAVE.root && spawnSync('nft', ['--version']).status === 0 ? '' : ' [skipped: needs root and nft]';

/**
 * A changed kernel-path listener: old and new gateway share the one
 * nftables table. Creating it again would flush the old sessions' mappings:
 * a data connection announced before the reload and dialled after it
 * would find nothing.
 */
test(`kernel data path: a mapping made before the reload still carries its data connection after it${kernelSkip}`, async ({ skip }) => {
  if (kernelSkip) skip();
  const table = `ops_rl_${process.pid}`;
  const port = await freePort();
  const file = join(dir.path, 'kernel.yaml');
  const write = (limit: number) => writeFileSync(file, ['listeners:', ...listenerYaml('k', port, ['data-path: kernel', `nft-table: ${table}`, `max-sessions: ${limit}`])].join('\n') + '\n');
  write(5);
  const gw = startGatewayProcess(['run', '--config', file]);
  try {
    await gw.waitFor((e) => e.event === 'listening', 'listening');
    const c = await FtpClient.connect('127.0.0.1', port);
    await c.login();
    const epsv = await c.send('EPSV');
    expect(epsv.code).toBe(229);
    await gw.waitFor((e) => e.event === 'data-nat' && e.action === 'map', 'mapping');
    write(6);
    gw.child.kill('SIGHUP');
    expect(await gw.waitFor((e) => e.event === 'reload', 'reload')).toMatchObject({ changed: ['k'] });
    const data = net.connect({ host: '127.0.0.1', port: Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]) });
    const chunks: Buffer[] = [];
    data.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise<void>((r) => data.once('close', () => r()));
    data.on('error', () => undefined);
    expect((await c.send('RETR /big.bin', true)).code).toBe(150);
    await ended;
    expect((await c.read()).code).toBe(226);
    expect(Buffer.concat(chunks).equals(BIG)).toBe(true);
    await c.quit();
    // The old gateway is gone now; the table stays for the new one.
    await gw.waitFor((e) => e.event === 'session-close', 'session-close');
    expect(spawnSync('nft', ['list', 'table', 'inet', table]).status).toBe(0);
    gw.child.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
    expect(spawnSync('nft', ['list', 'table', 'inet', table]).status).not.toBe(0);
  } finally {
    await gw.kill();
    spawnSync('nft', ['delete', 'table', 'inet', table]);
  }
});

test('a reload turns the admin endpoint on, moves it, and the old address stops answering', async () => {
  const [port, admin1, admin2] = [await freePort(), await freePort(), await freePort()];
  const file = join(dir.path, 'admin.yaml');
  const write = (admin?: number) => writeFileSync(file, [...(admin ? [`admin-listen: 127.0.0.1:${admin}`] : []), 'listeners:', ...listenerYaml('x', port)].join('\n') + '\n');
  write();
  const gw = startGatewayProcess(['run', '--config', file]);
  const refused = (p: number) => httpGet(p, '/healthz').then(() => 'answered', (err: NodeJS.ErrnoException) => err.code);
  try {
    await gw.waitFor((e) => e.event === 'listening', 'listening');
    expect(await refused(admin1)).toBe('ECONNREFUSED');
    for (const [admin, n] of [[admin1, 1], [admin2, 2]] as const) {
      write(admin);
      gw.child.kill('SIGHUP');
      await gw.waitFor((e) => e.event === 'reload' && gw.events.filter((x) => x.event === 'reload').length === n, `reload ${n}`);
      expect(await httpGet(admin, '/readyz')).toMatchObject({ status: 200 });
    }
    expect(await refused(admin1)).toBe('ECONNREFUSED');
  } finally {
    await gw.kill();
  }
});
