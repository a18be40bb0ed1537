#!/usr/bin/env node
/**
 * The `ftp-alg` command: yargs → one validated config → start the right thing.
 * Exit codes: 0 ok, 2 usage or configuration error (one line naming the flag),
 * 1 runtime failure.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { Level } from 'pino';
import { ConfigError, forwardFromFlags, parseSeconds, reverseFromFlags, type ForwardFlags, type ReverseFlags } from './config.js';
import { createLogger, logSink, LOG_LEVELS, type LogFormat } from './log.js';
import { startReverseGateway } from './gateway/reverse.js';
import { nftRuleset, startForwardGateway } from './gateway/forward.js';
import type { Gateway } from './gateway/server.js';
import { parseRunConfig } from './config-file.js';
import { startListeners } from './gateway/run.js';
import { readFileSync } from 'node:fs';
import type { EventSink } from './gateway/events.js';
import { FORWARD_FLAGS, LIMIT_FLAGS, REVERSE_FLAGS } from './flags.js';

export const EXIT = { ok: 0, runtime: 1, usage: 2 } as const;

interface CommonFlags {
  'log-level': Level;
  'log-format'?: LogFormat;
}

/** A gateway mode's flags (flags.ts) and the CLI's own --drain. */
function gatewayFlags<T>(y: Argv<T>, modeFlags: typeof REVERSE_FLAGS | typeof FORWARD_FLAGS) {
  return y
    .options(LIMIT_FLAGS)
    .options(modeFlags)
    .option('drain', { type: 'number', default: 10, describe: 'seconds running sessions get on SIGTERM/SIGINT' });
}

function withLogging<T>(y: Argv<T>) {
  return y
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as Level, describe: 'least severe events to log' })
    .option('log-format', { choices: ['json', 'pretty'] as const, describe: 'default: pretty when stderr is a terminal' });
}

async function sinkFor(flags: CommonFlags): Promise<EventSink> {
  const format = flags['log-format'] ?? (process.stderr.isTTY ? 'pretty' : 'json');
  return logSink(await createLogger(flags['log-level'], format));
}

/** Keeps the process up until SIGINT/SIGTERM, then drains and closes. */
function runUntilSignal(gateways: Gateway[], sink: EventSink, drainMs: number, onStop?: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(EXIT.runtime);
    stopping = true;
    const sessions = gateways.reduce((n, g) => n + g.sessions.size, 0);
    // close() stops the listeners before its first await: once the event
    // below is out, nobody new gets in.
    const closed = Promise.all(gateways.map((g) => g.close(drainMs)));
    sink({ event: 'shutdown', reason: signal, sessions });
    void closed
      .then(() => onStop?.())
      .then(
        () => process.exit(EXIT.ok),
        (err: Error) => {
          // E.g. the kernel data path's table could not be deleted.
          process.stderr.write(`ftp-alg: while shutting down: ${err.message}\n`);
          process.exit(EXIT.runtime);
        },
      );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
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
  await withLogging(yargs(argv))
    .scriptName('ftp-alg')
    .usage('$0 <command> [options]\n\nNAT-aware FTP application-layer gateway.')
    .command(
      'reverse',
      'gateway in front of an FTP server behind a NAT',
      (y) =>
        gatewayFlags(y, REVERSE_FLAGS),
      async (flags) => {
        const cfg = reverseFromFlags(flags as ReverseFlags);
        const sink = await sinkFor(flags as CommonFlags);
        const gateway = await startReverseGateway(cfg, sink);
        runUntilSignal([gateway], sink, Number(flags.drain) * 1000);
      },
    )
    .command(
      'forward',
      'gateway for LAN clients going out through a NAT (explicit USER name@host, or transparent)',
      (y) =>
        gatewayFlags(y, FORWARD_FLAGS)
          .option('print-nft', { type: 'boolean', default: false, describe: 'print the nftables ruleset for transparent mode and exit' })
          .option('lan-interface', { type: 'string', default: 'lan0', describe: 'LAN interface name for --print-nft' }),
      async (flags) => {
        const cfg = forwardFromFlags(flags as ForwardFlags);
        if (flags['print-nft']) {
          process.stdout.write(nftRuleset(String(flags['lan-interface']), cfg.listen.port, cfg.dataPath === 'kernel' ? cfg.nftTable : undefined));
          return;
        }
        const sink = await sinkFor(flags as CommonFlags);
        const gateway = await startForwardGateway(cfg, sink);
        runUntilSignal([gateway], sink, Number(flags.drain) * 1000);
      },
    )
    .command(
      'run',
      'several listeners from a YAML file, each reverse or forward (keys: the flags of its mode)',
      (y) => y.option('config', { type: 'string', describe: 'FILE.yaml with listeners: [{mode: reverse|forward, listen: ..., ...}]', demandOption: true }),
      async (flags) => {
        const file = String(flags.config);
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (err) {
          throw new ConfigError('--config', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        const cfg = parseRunConfig(file, text);
        const sink = await sinkFor(flags as CommonFlags);
        const gateways = await startListeners(cfg, sink);
        runUntilSignal(gateways, sink, cfg.drainMs);
      },
    )
    .command(
      'probe <url>',
      'from the client side: log in and try PASV, EPSV, PORT and EPRT; say what fails and why',
      (y) =>
        y
          .positional('url', { type: 'string', describe: 'ftp://[user[:pass]@]host[:port]/', demandOption: true })
          .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON (stable, see README)' })
          .option('timeout', { type: 'number', default: 10, describe: 'seconds to wait for each connection and reply' }),
      async (flags) => {
        const { parseProbeUrl, probe, formatProbeReport } = await import('./diagnose/probe.js');
        let target;
        try {
          target = parseProbeUrl(String(flags.url));
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
        const sink = await sinkFor(flags as CommonFlags);
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
