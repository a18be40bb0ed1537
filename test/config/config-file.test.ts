/**
 * `ftp-alg run --config FILE.yaml`: the file's keys are the flags of each
 * listener's mode, checked by the same code; every error names the file
 * and the key. Starting several listeners leaves nothing listening when
 * one of them cannot start.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import { ConfigError } from '../../src/config.js';
import { parseRunConfig } from '../../src/config-file.js';
import { startListeners } from '../../src/gateway/run.js';
import { startDemoServer, type DemoServer } from '../../src/demo/server.js';
import { FtpClient } from '../../src/client/ftp-client.js';
import { EventLog } from '../helpers/events.js';

const yaml = (lines: string[]) => lines.join('\n') + '\n';

describe('parsing', () => {
  test('two listeners, one of each mode, with flags of their own and the defaults of the rest', () => {
    const cfg = parseRunConfig(
      'gw.yaml',
      yaml([
        'drain: 3',
        'listeners:',
        '  - mode: reverse',
        '    listen: 198.18.2.1:21',
        '    server: 100.64.2.2:21',
        '    public-address: 198.18.2.1',
        '    passive-ports: 40000-40999',
        '    data-timeout: 5',
        '  - mode: forward',
        '    listen: "[::]:2121"',
        '    transparent: true',
        '    data-path: kernel',
      ]),
    );
    expect(cfg.drainMs).toBe(3000);
    expect(cfg.listeners).toHaveLength(2);
    expect(cfg.listeners[0]).toMatchObject({ mode: 'reverse', listen: { host: '198.18.2.1', port: 21 }, passivePorts: { lo: 40000, hi: 40999 }, acceptTimeoutMs: 5000, dataPath: 'relay' });
    expect(cfg.listeners[1]).toMatchObject({ mode: 'forward', listen: { host: '::', port: 2121 }, transparent: true, passive: 'pass', dataPath: 'kernel', nftTable: 'ftp_alg_data' });
  });

  test('a forward listener ends TLS (explicit proxy): the same keys as reverse', () => {
    const cfg = parseRunConfig(
      'gw.yaml',
      yaml([
        'listeners:',
        '  - mode: forward',
        '    listen: 127.0.0.1:2121',
        '    tls: terminate',
        '    tls-cert: gw.crt',
        '    tls-key: gw.key',
        '    require-tls: true',
        '    server-tls: explicit',
        '    server-ca: ca.pem',
      ]),
    );
    expect(cfg.listeners[0]).toMatchObject({
      mode: 'forward',
      transparent: false,
      tls: 'terminate',
      tlsTerminate: { certFile: 'gw.crt', keyFile: 'gw.key', require: true, implicit: false },
      serverTls: { mode: 'explicit', caFile: 'ca.pem', insecure: false },
    });
  });

  test.each([
    [['listeners: ['], /^gw\.yaml: not valid YAML: .*line 2, column 1$/],
    [['- just a list'], /^gw\.yaml: expected a mapping with "listeners"/],
    [['listeners: []'], /^gw\.yaml: listeners: a list of at least one listener$/],
    [['listener:', '  - mode: reverse'], /^gw\.yaml: listener: unknown key \(listeners, drain, admin-listen, transfer-log, user, group, log-level\)$/],
    [['drain: soon', 'listeners:', '  - mode: forward', '    listen: 127.0.0.1:0'], /^gw\.yaml: drain: "soon" is not a number of seconds/],
    [['listeners:', '  - mode: sideways'], /^gw\.yaml: listeners\[0\]\.mode: "sideways" is not reverse or forward$/],
    [['listeners:', '  - mode: forward', '    listen: 127.0.0.1:0', '    server: 127.0.0.1:21'], /^gw\.yaml: listeners\[0\]\.server: not a forward setting/],
    [['listeners:', '  - mode: forward', '    listen: 127.0.0.1:0', '    transparent: "yes"'], /^gw\.yaml: listeners\[0\]\.transparent: "yes" is not a boolean$/],
    [['listeners:', '  - mode: forward', '    listen: 127.0.0.1:0', '    transparent: true', '    tls: terminate', '    tls-cert: a.crt', '    tls-key: a.key'], /^gw\.yaml: listeners\[0\]\.tls: terminate needs explicit forward mode/],
    [['listeners:', '  - mode: forward', '    listen: 127.0.0.1:0', '    transparent: true', '    server-tls: explicit'], /^gw\.yaml: listeners\[0\]\.server-tls: needs explicit forward mode/],
    [['listeners:', '  - mode: reverse', '    listen: 127.0.0.1:0', '    server: 127.0.0.1:21'], /^gw\.yaml: listeners\[0\]\.public-address: is required$/],
    [['listeners:', '  - mode: forward', '    listen: 127.0.0.1:0', '  - mode: reverse', '    listen: 127.0.0.1:0', '    server: 127.0.0.1:21', '    public-address: ::1'], /^gw\.yaml: listeners\[1\]\.public-address: ::1 is IPv6/],
    [
      ['listeners:', '  - mode: forward', '    listen: 127.0.0.1:0', '    data-path: kernel', '  - mode: forward', '    listen: 127.0.0.1:0', '    data-path: kernel'],
      /^gw\.yaml: listeners\[1\]\.nft-table: "ftp_alg_data" is already used by listeners\[0\]/,
    ],
  ])('%j is refused with one line naming the key', (lines, message) => {
    let err: unknown;
    try {
      parseRunConfig('gw.yaml', yaml(lines));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });
});

describe('starting the listeners', () => {
  let server: DemoServer;
  beforeAll(async () => {
    server = await startDemoServer({ files: { '/f.txt': 'through two listeners\r\n' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  test('a reverse and a forward listener in one process both carry sessions', async () => {
    const log = new EventLog();
    const cfg = parseRunConfig(
      'gw.yaml',
      yaml([
        'listeners:',
        '  - mode: reverse',
        '    listen: 127.0.0.1:0',
        `    server: 127.0.0.1:${server.address.port}`,
        '    public-address: 127.0.0.1',
        '  - mode: forward',
        '    listen: 127.0.0.1:0',
        '    allow-destinations: 127.0.0.0/8',
        `    allow-destination-ports: "${server.address.port}"`,
      ]),
    );
    const [reverse, forward] = await startListeners(cfg, log.sink);
    try {
      const viaReverse = await FtpClient.connect('127.0.0.1', reverse!.address.port);
      await viaReverse.login();
      expect((await viaReverse.transfer('EPSV', 'RETR /f.txt')).data.toString()).toBe('through two listeners\r\n');
      await viaReverse.quit();
      const viaForward = await FtpClient.connect('127.0.0.1', forward!.address.port);
      await viaForward.login(`anonymous@127.0.0.1:${server.address.port}`);
      expect((await viaForward.transfer('PASV', 'RETR /f.txt')).data.toString()).toBe('through two listeners\r\n');
      await viaForward.quit();
      expect(log.of('listening').map((e) => e.mode)).toEqual(['reverse', 'forward']);
    } finally {
      await Promise.all([reverse, forward].map((g) => g?.close()));
    }
  });

  test('when a later listener cannot start, the ones already up are closed again', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const busy = (taken.address() as net.AddressInfo).port;
    const log = new EventLog();
    const cfg = parseRunConfig(
      'gw.yaml',
      yaml(['listeners:', '  - mode: forward', '    listen: 127.0.0.1:0', '  - mode: forward', `    listen: 127.0.0.1:${busy}`]),
    );
    try {
      await expect(startListeners(cfg, log.sink)).rejects.toThrow(/EADDRINUSE/);
      const first = log.of('listening')[0]!;
      // Nothing of ours still listens on the first listener's port.
      await expect(FtpClient.connect('127.0.0.1', first.port, 2_000)).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      taken.close();
    }
  });
});
