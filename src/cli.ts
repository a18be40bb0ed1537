#!/usr/bin/env node
/**
 * The `ftp-alg` command: yargs → one validated config → start the right thing.
 * Exit codes: 0 ok, 2 usage or configuration error (one line naming the flag),
 * 1 runtime failure.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { Level } from 'pino';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ConfigError, forwardFromFlags, parseSeconds, reverseFromFlags, type ForwardConfig, type ForwardFlags, type ReverseConfig, type ReverseFlags } from './config.js';
import { createEventLog, type EventLog, type LogFormat } from './log.js';
import { transparentRedirectRuleset } from './gateway/transparent-nft-ruleset.js';
import { checkPrivilegeDrop, listenerName, parseRunConfig, serviceFrom, type NamedListener, type RunConfig, type ServiceConfig } from './config-file.js';
import { Service } from './gateway/run.js';
import { FORWARD_COMMAND_FLAGS, FORWARD_FLAGS, LIMIT_FLAGS, LOG_FLAGS, REVERSE_FLAGS, RUN_FLAGS, SERVICE_FLAGS } from './flags.js';

export const EXIT = { ok: 0, runtime: 1, usage: 2 } as const;

interface CommonFlags {
  'log-level': Level;
  'log-format'?: LogFormat;
}

/** A gateway mode's flags and the process-wide ones (flags.ts). */
function gatewayFlags<T>(y: Argv<T>, modeFlags: typeof REVERSE_FLAGS | typeof FORWARD_FLAGS) {
  return y.options(LIMIT_FLAGS).options(modeFlags).options(SERVICE_FLAGS);
}

function logFor(flags: CommonFlags, level?: Level): EventLog {
  const format = flags['log-format'] ?? (process.stderr.isTTY ? 'pretty' : 'json');
  return createEventLog(level ?? flags['log-level'], format);
}

/**
 * Gives up root after binding: supplementary groups, group, then user (in
 * that order: after setuid nothing else may be changed).
 */
function dropPrivileges(user: string, group: string | undefined): void {
  const gid = group ?? primaryGroup(user);
  const p = process as NodeJS.Process & Required<Pick<NodeJS.Process, 'setuid' | 'setgid'>> & { initgroups?: (user: string, group: string) => void };
  if (typeof p.initgroups !== 'function') throw new Error('--user: this platform cannot change the user of a process');
  try {
    p.initgroups(user, gid);
    p.setgid(gid);
    p.setuid(user);
  } catch (err) {
    throw new Error(`--user ${user}: cannot drop privileges: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (needs root or CAP_SETUID/CAP_SETGID)`, { cause: err });
  }
}

function primaryGroup(user: string): string {
  try {
    return execFileSync('id', ['-g', '--', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    throw new ConfigError('--user', `"${user}" is not a user on this host`);
  }
}

/** Settles who we will run as before anything is bound: a typo exits 2 at once. */
function checkUser(service: ServiceConfig, key: (flag: string) => string): void {
  if (service.user === undefined) return;
  try {
    primaryGroup(service.user);
  } catch {
    throw new ConfigError(key('user'), `"${service.user}" is not a user on this host`);
  }
  if (service.group !== undefined) {
    try {
      execFileSync('getent', ['group', '--', service.group], { stdio: 'ignore' });
    } catch {
      throw new ConfigError(key('group'), `"${service.group}" is not a group on this host`);
    }
  }
}

/**
 * Runs a service until SIGTERM/SIGINT: the first drains (sessions get the
 * drain time, /healthz says 503), a second one closes every session at
 * once, removes what the process installed (the kernel path's nftables
 * table) and exits 1. SIGHUP never ends the process: it reloads (`run
 * --config`) or reopens the log files.
 */
async function runService(service: ServiceConfig, listeners: NamedListener[], log: EventLog, configFile?: string): Promise<void> {
  // No signal may end the process with its default action once we start
  // binding: a SIGHUP during start-up would otherwise kill it (exit 129).
  const started: { svc?: Service } = {};
  let stopping: Promise<void> | undefined;
  let forced = false;
  process.on('SIGHUP', () => void started.svc?.reload().catch((err: Error) => log.sink({ event: 'warning', message: `reload: ${err.message}` })));
  const stop = (signal: string) => {
    const s = started.svc;
    if (!s) process.exit(EXIT.runtime);
    if (stopping) {
      // Second signal: no more waiting. close(0) ends every session now and
      // runs each gateway's clean-up (nftables table) before we exit.
      if (forced) return;
      forced = true;
      s.sink({ event: 'shutdown', reason: `${signal} again: closing every session now`, sessions: s.sessionCount });
      const done = () => process.exit(EXIT.runtime);
      void Promise.allSettled([stopping, s.shutdown(0)]).then(done, done);
      return;
    }
    // Listeners stop accepting inside shutdown()'s first synchronous steps:
    // whoever reads the shutdown event finds them closed already.
    const sessions = s.sessionCount;
    stopping = s.shutdown(s.drainMs);
    s.sink({ event: 'shutdown', reason: signal, sessions });
    void stopping.then(
      () => forced || process.exit(EXIT.ok),
      (err: Error) => {
        if (forced) return;
        // E.g. the kernel data path's table could not be deleted.
        process.stderr.write(`ftp-alg: while shutting down: ${err.message}\n`);
        process.exit(EXIT.runtime);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  started.svc = await Service.start({
    service,
    listeners,
    log: log.sink,
    setLogLevel: (level) => log.setLevel(level),
    configFile: configFile ? { path: configFile, read: () => readRunConfig(configFile) } : undefined,
  });
  if (service.user !== undefined) dropPrivileges(service.user, service.group);
}

function readRunConfig(file: string): RunConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseRunConfig(file, text);
}

/** A single-mode gateway is a listener like those of a file, named `mode@listen`. */
function single(cfg: ReverseConfig | ForwardConfig, listen: string): NamedListener {
  return { ...cfg, name: listenerName(cfg.mode, listen), fingerprint: '' };
}

function serviceFromFlags(flags: Record<string, unknown>, dataPath: string): ServiceConfig {
  const service = serviceFrom(flags, (f) => `--${f}`);
  checkPrivilegeDrop(service, [{ dataPath }], (f) => `--${f}`, () => '--data-path');
  checkUser(service, (f) => `--${f}`);
  return service;
}

function fail(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`ftp-alg: ${err.message}\n`);
    process.exit(EXIT.usage);
  }
  const e = err as NodeJS.ErrnoException;
  const what = e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL' ? `cannot listen: ${e.message}` : e.message;
  process.stderr.write(`ftp-alg: ${what}\n`);
  process.exit(EXIT.runtime);
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .options(LOG_FLAGS)
    .scriptName('ftp-alg')
    .usage('$0 <command> [options]\n\nNAT-aware FTP application-layer gateway.')
    .command(
      'reverse',
      'gateway in front of an FTP server behind a NAT',
      (y) =>
        gatewayFlags(y, REVERSE_FLAGS),
      async (flags) => {
        const cfg = reverseFromFlags(flags as ReverseFlags);
        const service = serviceFromFlags(flags, cfg.dataPath);
        await runService(service, [single(cfg, String(flags.listen))], logFor(flags as CommonFlags));
      },
    )
    .command(
      'forward',
      'gateway for LAN clients going out through a NAT (explicit USER name@host, or transparent)',
      (y) =>
        gatewayFlags(y, FORWARD_FLAGS).options(FORWARD_COMMAND_FLAGS),
      async (flags) => {
        const cfg = forwardFromFlags(flags as ForwardFlags);
        if (flags['print-nft']) {
          process.stdout.write(transparentRedirectRuleset(String(flags['lan-interface']), cfg.listen.port, cfg.dataPath === 'kernel' ? cfg.nftTable : undefined));
          return;
        }
        const service = serviceFromFlags(flags, cfg.dataPath);
        await runService(service, [single(cfg, String(flags.listen))], logFor(flags as CommonFlags));
      },
    )
    .command(
      'run',
      'several listeners from a YAML file, each reverse or forward (keys: the flags of its mode); SIGHUP reloads it',
      (y) => y.options(RUN_FLAGS),
      async (flags) => {
        const file = String(flags.config);
        const cfg = readRunConfig(file);
        checkUser(cfg, (f) => `${file}: ${f}`);
        if (flags.check) {
          process.stdout.write(`ftp-alg: ${file}: ok (${cfg.listeners.length} listener${cfg.listeners.length === 1 ? '' : 's'}: ${cfg.listeners.map((l) => l.name).join(', ')})\n`);
          return;
        }
        await runService(cfg, cfg.listeners, logFor(flags as CommonFlags, cfg.logLevel), file);
      },
    )
    .command(
      'probe <url>',
      'from the client side: log in (also over FTPS) and try PASV, EPSV, PORT and EPRT; say what fails and why',
      (y) =>
        y
          .positional('url', { type: 'string', describe: 'ftp://, ftpes:// (explicit FTPS) or ftps:// (implicit FTPS) [user[:pass]@]host[:port]/', demandOption: true })
          .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON (stable, see README)' })
          .option('timeout', { type: 'number', default: 10, describe: 'seconds to wait for each connection and reply' })
          .option('insecure', { type: 'boolean', default: false, describe: "ftpes://, ftps://: do not verify the server's certificate" }),
      async (flags) => {
        const { parseProbeUrl, probe, formatProbeReport } = await import('./diagnose/probe.js');
        let target;
        try {
          target = parseProbeUrl(String(flags.url), { insecure: Boolean(flags.insecure) });
        } catch (err) {
          throw new ConfigError('url', (err as Error).message);
        }
        const timeoutMs = parseSeconds('--timeout', flags.timeout);
        const progress = flags.json || !process.stderr.isTTY ? undefined : (line: string) => process.stderr.write(`${line}\n`);
        const report = await probe(target, timeoutMs, progress);
        process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatProbeReport(report));
        // Exit 0 when every mode works, 1 when the probe found a problem.
        process.exitCode = report.verdict.codes.includes('OK') ? EXIT.ok : EXIT.runtime;
      },
    )
    .command(
      'diagnose <capture> [second]',
      'analyse pcap/pcapng captures: FTP sessions, data connections, findings; with two captures (inside and outside of a NAT), the rewrites it made and whether it adjusted TCP sequence numbers',
      (y) =>
        y
          .positional('capture', { type: 'string', describe: 'a pcap or pcapng file', demandOption: true })
          .positional('second', { type: 'string', describe: 'a capture from the other side of the NAT or ALG' })
          .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON (shape: src/diagnose/report.ts)' }),
      async (flags) => {
        const { diagnoseFiles, formatDiagnoseReport, CaptureError } = await import('./diagnose/diagnose.js');
        const paths = [String(flags.capture), ...(flags.second ? [String(flags.second)] : [])];
        try {
          const report = await diagnoseFiles(paths);
          process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatDiagnoseReport(report));
          // Exit 1 when there is an error-level finding: scripts can tell a broken setup.
          process.exitCode = report.findings.some((f) => f.severity === 'error') ? EXIT.runtime : EXIT.ok;
        } catch (err) {
          if (err instanceof CaptureError) throw new ConfigError('capture', err.message);
          throw err;
        }
      },
    )
    .command(
      'explain <line>',
      'decode one FTP command or reply: meaning, endpoint, address class, what a NAT does to it',
      (y) =>
        y
          .positional('line', { type: 'string', describe: "e.g. 'PORT 100,64,1,2,4,1' or '227 Entering Passive Mode (100,64,2,2,195,80)'", demandOption: true })
          .option('json', { type: 'boolean', default: false }),
      async (flags) => {
        const { explainLine, formatExplanation } = await import('./diagnose/explain.js');
        const x = explainLine(String(flags.line));
        if (x.kind === 'unknown') throw new ConfigError('line', x.meaning);
        process.stdout.write(flags.json ? `${JSON.stringify(x, null, 2)}\n` : formatExplanation(x));
      },
    )
    .command(
      'demo',
      'built-in FTP server behind the gateway on loopback, with a self-check transfer',
      (y) =>
        y
          .option('listen', { type: 'string', default: '127.0.0.1:2121', describe: 'ADDR:PORT for the gateway' })
          .option('self-check-only', { type: 'boolean', default: false, describe: 'exit after the self-check' }),
      async (flags) => {
        const { runDemo } = await import('./demo/run.js');
        const { sink } = logFor(flags as CommonFlags);
        const code = await runDemo({ listen: String(flags.listen), selfCheckOnly: Boolean(flags['self-check-only']), sink });
        if (code !== undefined) process.exit(code);
      },
    )
    .demandCommand(1, 'name a command: reverse, forward, run, probe, diagnose, explain or demo')
    .strict()
    .recommendCommands()
    .fail((msg, err) => {
      if (err) fail(err);
      process.stderr.write(`ftp-alg: ${msg.replace(/\s*\n\s*/g, '; ')} (see: ftp-alg --help)\n`);
      process.exit(EXIT.usage);
    })
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .parseAsync();
}

main(hideBin(process.argv)).catch(fail);
