/**
 * ftp-alg(8), generated from the one flag table (flags.ts), so that the
 * man page cannot drift from `--help`. `npm run man` writes
 * docs/ftp-alg.8; a test checks the file is current and that every option
 * of `--help` is in it, and the other way round.
 */
import type { Options } from 'yargs';
import { FORWARD_COMMAND_FLAGS, FORWARD_FLAGS, LIMIT_FLAGS, LOG_FLAGS, REVERSE_FLAGS, RUN_FLAGS, SERVICE_FLAGS } from './flags.js';

type Table = Record<string, Options>;

/** roff text: backslashes, hyphens (real minus signs in options), and a leading dot or quote. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1');
}

function optionList(table: Table): string[] {
  return Object.entries(table).flatMap(([name, o]) => {
    const value = o.type === 'boolean' ? '' : ` \\fI${o.choices ? (o.choices as readonly string[]).join('|') : o.type === 'number' ? 'N' : 'VALUE'}\\fR`;
    const dflt = o.default !== undefined && o.default !== false ? ` (default: ${String(o.default)})` : '';
    return ['.TP', `.B \\-\\-${roff(name)}${value}`, `${roff(String(o.describe ?? ''))}${roff(dflt)}${o.demandOption ? ' (required)' : ''}`];
  });
}

const section = (title: string, ...lines: string[]) => [`.SH ${title}`, ...lines];
const sub = (title: string, table: Table) => [`.SS ${title}`, ...optionList(table)];

export function renderManPage(version: string): string {
  const lines = [
    `.TH FTP\\-ALG 8 "" "ftp-alg ${roff(version)}" "System Administration"`,
    ...section('NAME', 'ftp\\-alg \\- NAT\\-aware FTP application\\-layer gateway'),
    ...section(
      'SYNOPSIS',
      '.B ftp\\-alg reverse',
      '\\-\\-listen \\fIADDR:PORT\\fR \\-\\-server \\fIHOST:PORT\\fR \\-\\-public\\-address \\fIIP\\fR [\\fIoptions\\fR]',
      '.br',
      '.B ftp\\-alg forward',
      '\\-\\-listen \\fIADDR:PORT\\fR [\\-\\-transparent] [\\fIoptions\\fR]',
      '.br',
      '.B ftp\\-alg run',
      '\\-\\-config \\fIFILE.yaml\\fR [\\-\\-check]',
      '.br',
      '.B ftp\\-alg',
      '\\fBprobe\\fR \\fIURL\\fR | \\fBdiagnose\\fR \\fICAPTURE\\fR [\\fISECOND\\fR] | \\fBexplain\\fR \\fILINE\\fR | \\fBdemo\\fR',
    ),
    ...section(
      'DESCRIPTION',
      'FTP carries data connection addresses inside the control stream (PORT, EPRT, 227, 229), which a NAT does not rewrite.',
      '.B ftp\\-alg',
      'sits between FTP clients and servers, rewrites those lines to addresses that work, opens the matching data connections',
      'and relays them (or, with \\-\\-data\\-path kernel, has nftables translate them); every other byte passes unchanged.',
      '.PP',
      '\\fBreverse\\fR runs in front of an FTP server behind a NAT; \\fBforward\\fR serves LAN clients going out through a NAT',
      '(explicit proxy with USER name@host, or transparent with an nftables redirect); \\fBrun\\fR starts several listeners',
      'from a YAML file whose listener keys are the options below without the dashes.',
      '\\fBprobe\\fR, \\fBdiagnose\\fR and \\fBexplain\\fR find out why FTP breaks behind a NAT; \\fBdemo\\fR shows the gateway at work on loopback.',
    ),
    ...section('OPTIONS'),
    ...sub('Reverse mode', REVERSE_FLAGS),
    ...sub('Forward mode', FORWARD_FLAGS),
    ...sub('Forward mode, command line only', FORWARD_COMMAND_FLAGS),
    ...sub('Limits and data path (both modes)', LIMIT_FLAGS),
    ...sub('Service (reverse, forward; top\\-level keys in run \\-\\-config)', SERVICE_FLAGS),
    ...sub('run', RUN_FLAGS),
    ...sub('Logging (every command; log\\-level also a top\\-level key)', LOG_FLAGS),
    ...section(
      'SIGNALS',
      '.TP',
      '.B SIGTERM, SIGINT',
      'Stop accepting, let running sessions finish for up to \\-\\-drain seconds (/healthz answers 503), close the rest, remove the nftables table, exit 0.',
      'A second signal closes every session at once, removes the table and exits 1.',
      '.TP',
      '.B SIGHUP',
      'Never ends the process. Reopens the transfer log; with \\fBrun\\fR, re\\-reads the file: listeners added are opened, removed ones stop accepting',
      'and drain, changed ones are replaced; running sessions keep their settings. An invalid file changes nothing and logs \\fIreload\\-failed\\fR',
      'with the file and the key.',
    ),
    ...section('EXIT STATUS', '0 ok (also after a graceful SIGTERM); 1 runtime failure (e.g. cannot listen); 2 usage or configuration error (one line naming the flag or key).'),
    ...section('FILES', '.TP', '.I /etc/ftp\\-alg/ftp\\-alg.yaml', 'configuration for \\fBrun\\fR (see contrib/systemd in the source)'),
    ...section('SEE ALSO', '.BR nft (8),', '.BR xferlog (5),', '.BR systemd.exec (5)'),
  ];
  return `${lines.join('\n')}\n`;
}
