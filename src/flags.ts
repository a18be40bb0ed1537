/**
 * The gateway flags of each mode, in one place: the CLI registers them and
 * `run --config` takes the same names as a listener's keys, with the same
 * types, so the two cannot drift apart. Validation is config.ts's.
 */
import type { Options } from 'yargs';

/** Limits and timeouts both modes take (README: Security and limits), and the data path. */
export const LIMIT_FLAGS = {
  'data-timeout': { type: 'number', describe: 'seconds a data listener waits for its one connection', default: 30 },
  'data-idle-timeout': { type: 'number', describe: 'seconds a data connection may stall before it is closed', default: 300 },
  'connect-timeout': { type: 'number', describe: 'seconds to connect to the server', default: 10 },
  'login-timeout': { type: 'number', describe: 'seconds from connect to a successful login', default: 60 },
  'idle-timeout': { type: 'number', describe: 'seconds an idle control connection stays (never during a transfer)', default: 600 },
  'max-sessions': { type: 'number', describe: 'sessions at once, all clients', default: 1000 },
  'max-sessions-per-client': { type: 'number', describe: 'sessions at once from one client address', default: 50 },
  'max-data-listeners-per-client': { type: 'number', describe: 'open data listeners one client address may hold, all its sessions together', default: 4 },
  'max-line': { type: 'number', describe: 'longest control line in bytes', default: 4096 },
  tls: { type: 'string', choices: ['refuse', 'passthrough', 'terminate'], default: 'refuse', describe: 'AUTH TLS: refuse (534), pass through blindly, or terminate here (needs --tls-cert/--tls-key; not with --transparent)' },
  'tls-cert': { type: 'string', describe: 'PEM certificate (chain) clients see with --tls terminate' },
  'tls-key': { type: 'string', describe: 'PEM private key of --tls-cert' },
  'implicit-tls': { type: 'boolean', default: false, describe: 'the listener speaks TLS from the first byte (port 990 style; --tls terminate)' },
  'require-tls': { type: 'boolean', default: false, describe: 'refuse USER before AUTH TLS and transfers without PROT P (--tls terminate)' },
  'server-tls': { type: 'string', choices: ['off', 'explicit', 'implicit'], default: 'off', describe: 'TLS toward the server: off, explicit (AUTH TLS) or implicit' },
  'server-ca': { type: 'string', describe: "PEM CA bundle the server's certificate is checked against (default: the system's CAs)" },
  'server-name': { type: 'string', describe: "name the server's certificate must carry (default: the host of --server, or of USER name@host in forward mode)" },
  'server-insecure': { type: 'boolean', default: false, describe: "do not verify the server's certificate (logged as a warning)" },
  'data-path': { type: 'string', choices: ['relay', 'kernel'], default: 'relay', describe: 'relay: data passes through ftp-alg; kernel: nftables translates each data connection (root, Linux)' },
  'nft-table': { type: 'string', default: 'ftp_alg_data', describe: 'nftables table (inet) the kernel data path owns; deleted on exit' },
} as const satisfies Record<string, Options>;

export const REVERSE_FLAGS = {
  listen: { type: 'string', describe: 'ADDR:PORT to accept clients on', demandOption: true },
  server: { type: 'string', describe: 'HOST:PORT[,HOST:PORT...] of the FTP server(s)', demandOption: true },
  'public-address': { type: 'string', describe: 'IPv4 address clients reach the gateway at (announced in 227)', demandOption: true },
  'inside-address': { type: 'string', describe: 'our address facing the server, for active-mode listeners' },
  'passive-ports': { type: 'string', describe: 'LO-HI range for passive data listeners' },
  'active-ports': { type: 'string', describe: 'LO-HI range for active data listeners' },
  'server-networks': { type: 'string', describe: 'CIDR,... the server may announce in 227/229 besides its own address' },
  balance: { type: 'string', choices: ['round-robin', 'least-connections', 'source', 'user'], default: 'round-robin', describe: 'how a session picks one of several --server backends' },
  'backend-down': { type: 'number', default: 30, describe: 'seconds a backend that failed to connect or greet is skipped' },
  'health-interval': { type: 'number', describe: 'seconds between active backend checks (connect + 220); default: none' },
  'send-proxy-protocol': { type: 'string', choices: ['v1', 'v2'], describe: 'start each backend connection with a PROXY header naming the real client' },
  'proxy-protocol-from': { type: 'string', describe: 'CIDR,... of load balancers whose control and passive data connections must start with a PROXY header' },
  announce: { type: 'string', array: true, describe: 'CIDR=IP: announce IP in 227 to clients in CIDR (repeatable; first match wins, else --public-address)' },
} as const satisfies Record<string, Options>;

export const FORWARD_FLAGS = {
  listen: { type: 'string', describe: 'ADDR:PORT to accept LAN clients on', demandOption: true },
  transparent: { type: 'boolean', default: false, describe: 'clients are redirected by nftables; the server is their original destination' },
  'public-address': { type: 'string', describe: 'our outside address, for active-mode listeners (default: our end of the server connection)' },
  passive: { type: 'string', choices: ['pass', 'relay'], describe: 'pass: leave 227/229 alone (default when transparent); relay: listen and announce ourselves (default when explicit)' },
  'passive-ports': { type: 'string', describe: 'LO-HI range for relayed passive data listeners' },
  'active-ports': { type: 'string', describe: 'LO-HI range for active data listeners' },
  'allow-clients': { type: 'string', describe: 'CIDR,... that may use the gateway (default: loopback, 100.64/10, RFC 1918, fc00::/7)' },
  'allow-destinations': {
    type: 'string',
    describe: "CIDR,... of servers allowed although refused by default (the clients' networks, loopback, link-local, multicast, the gateway's own addresses)",
  },
  'allow-destination-ports': { type: 'string', describe: 'PORT or LO-HI,... servers may be reached on', default: '21' },
  'active-source-port': { type: 'number', describe: 'source port for active data connections to clients (20 needs privileges)' },
} as const satisfies Record<string, Options>;

/** How events are logged; every command takes these. */
export const LOG_FLAGS = {
  'log-level': { type: 'string', choices: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info', describe: 'least severe events to log' },
  'log-format': { type: 'string', choices: ['json', 'pretty'], describe: 'json lines, or one line per event for people (default: pretty when stderr is a terminal)' },
} as const satisfies Record<string, Options>;

/**
 * Process-wide settings of a running gateway (reverse, forward; in `run
 * --config` the same names are top-level keys of the file).
 */
export const SERVICE_FLAGS = {
  drain: { type: 'number', default: 10, describe: 'seconds running sessions get on SIGTERM/SIGINT (a second signal closes them at once)' },
  'admin-listen': { type: 'string', describe: 'ADDR:PORT for GET /metrics, /healthz, /readyz (off by default; loopback, or a non-wildcard address named explicitly)' },
  'transfer-log': { type: 'string', describe: 'FILE to append one xferlog line per transfer to (reopened on SIGHUP)' },
  user: { type: 'string', describe: 'drop to this user after binding (not with --data-path kernel)' },
  group: { type: 'string', describe: "drop to this group after binding (default: the user's primary group)" },
} as const satisfies Record<string, Options>;

/** `forward`'s own options that are not listener settings (not YAML keys). */
export const FORWARD_COMMAND_FLAGS = {
  'print-nft': { type: 'boolean', default: false, describe: 'print the nftables ruleset for transparent mode and exit' },
  'lan-interface': { type: 'string', default: 'lan0', describe: 'LAN interface name for --print-nft' },
} as const satisfies Record<string, Options>;

/** `run`'s options; everything else comes from the file. */
export const RUN_FLAGS = {
  config: { type: 'string', describe: 'FILE.yaml with listeners: [{mode: reverse|forward, listen: ..., ...}]', demandOption: true },
  check: { type: 'boolean', default: false, describe: 'validate the file and exit: 0 valid, 2 not (one line naming the key)' },
} as const satisfies Record<string, Options>;
