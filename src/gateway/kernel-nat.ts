/**
 * The kernel data path: instead of relaying a data connection, the gateway
 * asks netfilter to translate it, as OpenBSD's ftp-proxy does with pf. Each
 * expected data connection becomes two map elements in one nftables table of
 * ours: a DNAT (expected source, our address and port → the real endpoint)
 * and, when needed, an SNAT (so the receiver sees the data come from the
 * address it already talks to on the control connection — vsftpd and ncftp
 * check that). The bytes then never enter this process.
 *
 * An element only has to live until the connection is set up: conntrack
 * keeps the translation for the connection's lifetime. Elements carry a
 * kernel timeout as well, so a gateway that dies leaves nothing that matches.
 * Both elements of a mapping are keyed by the same tuple (expected source,
 * our address, our port): unique while the port is ours, so two sessions
 * never share an element and one's cleanup cannot undo another's.
 */
import { isTableName } from '../config.js';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Endpoint, IpAddress } from '../protocol/address.js';
import { KernelNatError, openNftChannel, type NftChannel, type NftChannelKind } from './nft-channel.js';

export { KernelNatError } from './nft-channel.js';

export interface NatMapping {
  /** Who will open the data connection (the only source the mapping matches). */
  source: IpAddress;
  /** The address and port of ours that the source was told to connect to. */
  via: Endpoint;
  /** Where the connection really goes. */
  target: Endpoint;
  /** Source address the target sees; undefined when the source may show through. */
  snatTo?: IpAddress | undefined;
}


/** Marks a table as ours; a table without it is never replaced or deleted. */
const OWNER = 'ftp-alg pid';

/**
 * Our table. Priorities run just before the usual NAT chains (dstnat -100,
 * srcnat 100): the first NAT chain to bind a connection wins, and a
 * masquerade rule elsewhere must not hide the source a peer checks.
 * The output chain covers clients on this host (loopback); the SNAT runs in
 * input too, for a connection DNATed to this host (a server on the gateway),
 * which never reaches postrouting. The SNAT key is the connection's original
 * destination, so only connections our DNAT made match it.
 */
export function renderTable(table: string, pid: number): string {
  const maps = (f: 4 | 6) => {
    const addr = f === 4 ? 'ipv4_addr' : 'ipv6_addr';
    return [
      `  map dnat${f} { type ${addr} . ${addr} . inet_service : ${addr} . inet_service; flags timeout; }`,
      `  map snat${f} { type ${addr} . ${addr} . inet_service : ${addr}; flags timeout; }`,
    ];
  };
  const dnat = ['    dnat ip to ip saddr . ip daddr . tcp dport map @dnat4', '    dnat ip6 to ip6 saddr . ip6 daddr . tcp dport map @dnat6'];
  const snat = [
    '    meta l4proto tcp ct status dnat snat ip to ip saddr . ct original ip daddr . ct original proto-dst map @snat4',
    '    meta l4proto tcp ct status dnat snat ip6 to ip6 saddr . ct original ip6 daddr . ct original proto-dst map @snat6',
  ];
  return [
    `table inet ${table} {`,
    `  comment "${OWNER} ${pid}"`,
    ...maps(4),
    ...maps(6),
    '  chain prerouting {',
    '    type nat hook prerouting priority -101; policy accept;',
    ...dnat,
    '  }',
    '  chain output {',
    '    type nat hook output priority -101; policy accept;',
    ...dnat,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority 99; policy accept;',
    ...snat,
    '  }',
    '  chain input {',
    '    type nat hook input priority 99; policy accept;',
    ...snat,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** nft commands that add (with a kernel timeout) or delete one mapping's elements. */
export function renderMapping(table: string, m: NatMapping, action: 'add' | 'delete', timeoutMs: number): string {
  const f = m.source.family;
  if (m.via.family !== f || m.target.family !== f || (m.snatTo && m.snatTo.family !== f)) {
    throw new Error('a kernel mapping cannot change the address family');
  }
  const timeout = action === 'add' ? ` timeout ${Math.max(1, Math.ceil(timeoutMs / 1000))}s` : '';
  const dnatKey = `${m.source.address} . ${m.via.address} . ${m.via.port}`;
  const lines = [
    `${action} element inet ${table} dnat${f} { ${dnatKey}${timeout}${action === 'add' ? ` : ${m.target.address} . ${m.target.port}` : ''} }`,
  ];
  if (m.snatTo) {
    lines.push(`${action} element inet ${table} snat${f} { ${dnatKey}${timeout}${action === 'add' ? ` : ${m.snatTo.address}` : ''} }`);
  }
  return lines.join('\n') + '\n';
}

function nftProblem(why: string): KernelNatError {
  return new KernelNatError(/Operation not permitted/.test(why) ? `cannot program nftables: ${why} (needs root or CAP_NET_ADMIN)` : `cannot program nftables: ${why}`);
}

/** A process that could still be an ftp-alg (a reused PID running something else is not). */
function isLiveNode(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return /node|ftp-alg/.test(readFileSync(`/proc/${pid}/cmdline`, 'latin1'));
  } catch {
    return true;
  }
}

/** True when nft failed only because the element had already expired. */
function alreadyGone(err: unknown): boolean {
  return err instanceof KernelNatError && /No such file or directory/.test(err.message);
}

interface QueuedScript {
  script: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class KernelNat {
  /**
   * Changes queue up and go to netfilter as one transaction per turn of the
   * event loop (setImmediate: after every socket that was ready has been
   * read), so a burst of PASVs and 226s from many sessions costs one netlink
   * round trip, and an unmap queued just before a reply is written runs after
   * that reply is out. Batches run one at a time, in order, so an element's
   * delete never overtakes its add.
   */
  private pending: QueuedScript[] = [];
  private running = false;
  private kickQueued = false;
  private closed = false;
  /** Transactions sent to netfilter so far (reruns of a failed batch included): what batching saves shows here. */
  private transactions = 0;
  /** When the kernel drops each mapping's elements by itself (by its delete script). */
  private readonly expiry = new Map<string, number>();
  /** Deletes the table if the process exits without close() (process.exit on a second SIGINT, a crash). */
  private readonly exitHook: (() => void) | undefined;

  private constructor(
    readonly table: string,
    private readonly channel: NftChannel,
  ) {
    const runSync = channel.runSync?.bind(channel);
    if (runSync) {
      this.exitHook = () => {
        try {
          runSync(`delete table inet ${table}\n`);
        } catch {
          // Already gone, or nothing more we can do on the way out.
        }
      };
      process.once('exit', this.exitHook);
    }
  }

  get transactionCount(): number {
    return this.transactions;
  }

  /** How this gateway programs netfilter (libnftables in process, or an nft process per batch). */
  get channelKind(): NftChannelKind {
    return this.channel.kind;
  }

  /**
   * Creates (or replaces, after a crash) our table. Rejects with a one-line
   * reason when nftables cannot be programmed (no nft, no CAP_NET_ADMIN).
   * `channel` forces one way of talking to netfilter (bench, tests).
   */
  static async create(table: string, opts: { channel?: NftChannelKind } = {}): Promise<KernelNat> {
    if (!isTableName(table)) throw new KernelNatError(`"${table}" is not an nftables table name (letters, digits, _; up to 32)`);
    const channel = openNftChannel(opts.channel);
    try {
      let existing: string | undefined;
      try {
        existing = await channel.run(`list table inet ${table}\n`);
      } catch (err) {
        const why = (err as Error).message;
        if (!/No such file or directory/.test(why)) throw nftProblem(why);
      }
      if (existing !== undefined) {
        // Replace only a table a dead ftp-alg left behind, never someone else's.
        const owner = new RegExp(`comment "${OWNER} (\\d+)"`).exec(existing);
        if (!owner) throw new KernelNatError(`table inet ${table} exists and is not ftp-alg's: choose another --nft-table`);
        const pid = Number(owner[1]);
        if (pid !== process.pid && isLiveNode(pid)) throw new KernelNatError(`table inet ${table} is in use by ftp-alg (pid ${pid}): give each gateway its own --nft-table`);
      }
      try {
        await channel.run(`${existing !== undefined ? `delete table inet ${table}\n` : ''}${renderTable(table, process.pid)}`);
      } catch (err) {
        throw nftProblem((err as Error).message);
      }
    } catch (err) {
      channel.close();
      throw err;
    }
    return new KernelNat(table, channel);
  }

  /** Why data between two other hosts will not pass, if it will not (forwarding off). */
  static async forwardingProblem(): Promise<string | undefined> {
    const v4 = await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8').catch(() => '1');
    return v4.trim() === '1' ? undefined : 'net.ipv4.ip_forward is 0: the kernel data path cannot pass data between two other hosts (only to and from this one)';
  }

  /** Installs a mapping: the one netlink round trip on a transfer's critical path. */
  async add(m: NatMapping, timeoutMs: number): Promise<void> {
    // Taken before the batch commits, so the deadline is never later than the kernel's.
    const deadline = Date.now() + Math.max(1, Math.ceil(timeoutMs / 1000)) * 1000;
    await this.enqueue(renderMapping(this.table, m, 'add', timeoutMs));
    this.expiry.set(renderMapping(this.table, m, 'delete', 0), deadline);
  }

  /**
   * Removes a mapping; elements that already expired are no error. Those
   * about to expire are left to the kernel: deleting one that is gone fails
   * its whole batch, which then reruns item by item. Callers need not wait:
   * the delete goes out with the next batch.
   */
  async remove(m: NatMapping): Promise<void> {
    const script = renderMapping(this.table, m, 'delete', 0);
    const deadline = this.expiry.get(script);
    this.expiry.delete(script);
    if (deadline !== undefined && Date.now() >= deadline - 1_000) return;
    const lines = script.trimEnd().split('\n');
    await Promise.all(
      lines.map((line) =>
        this.enqueue(line + '\n').catch((err: unknown) => {
          if (!alreadyGone(err)) throw err;
        }),
      ),
    );
  }

  /** Deletes the table: running connections keep their translation (conntrack). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.exitHook) process.removeListener('exit', this.exitHook);
    try {
      await this.enqueue(`delete table inet ${this.table}\n`).catch((err: unknown) => {
        if (!alreadyGone(err)) throw err;
      });
    } finally {
      this.channel.close();
    }
  }

  private enqueue(script: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ script, resolve, reject });
      if (this.running || this.kickQueued) return;
      this.kickQueued = true;
      setImmediate(() => {
        this.kickQueued = false;
        if (!this.running) void this.drain();
      });
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      try {
        this.transactions++;
        await this.channel.run(batch.map((b) => b.script).join(''));
        for (const b of batch) b.resolve();
      } catch (err) {
        if (batch.length === 1) {
          batch[0]!.reject(err);
          continue;
        }
        // A batch is all or nothing: run each alone so that only the item
        // at fault (an element already expired, say) fails.
        for (const b of batch) {
          this.transactions++;
          await this.channel.run(b.script).then(b.resolve, b.reject);
        }
      }
    }
    this.running = false;
  }
}
