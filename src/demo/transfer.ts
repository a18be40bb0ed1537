/**
 * The 150 → 226 sequence shared by RETR, STOR, APPE, LIST and NLST.
 *
 * RFC 959 §5.4: 150, then 226 once the data connection is closed after a
 * complete transfer, or 425 (no connection) / 426 (connection lost or
 * aborted) / 451 (local error). 226 is sent only after our side of the data
 * connection has finished: every byte handed to the kernel and the FIN
 * queued behind it, so that a gateway or client that relays 226 cannot
 * overtake the data. Uploads are complete when the client closes its side.
 */
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { SessionContext } from './context.js';
import type { PendingDataConnection } from './data-channel.js';

/** Opened before the 150: a refusal (550/553) never reaches the data connection. */
export type TransferPlan =
  | { direction: 'send'; opening: string; done: string; source: Readable }
  | { direction: 'receive'; opening: string; done: string; sink: Writable };

/**
 * `prepare` checks the request (replying 5xx itself and returning undefined
 * when it refuses) and opens the file side of the transfer.
 */
export async function runTransfer(ctx: SessionContext, prepare: () => Promise<TransferPlan | undefined>): Promise<void> {
  const channel = ctx.takeDataConnection();
  if (!channel) {
    ctx.reply(425, 'Use PORT or PASV first.');
    return;
  }
  // From here on ABOR interrupts, even while the file is being opened.
  const transfer = ctx.beginTransfer();
  try {
    const plan = await prepare();
    if (plan) await execute(ctx, channel, plan, transfer.signal);
  } finally {
    ctx.endTransfer(transfer);
    ctx.retire(channel);
  }
}

async function execute(ctx: SessionContext, channel: PendingDataConnection, plan: TransferPlan, signal: AbortSignal): Promise<void> {
  const local = plan.direction === 'send' ? plan.source : plan.sink;
  // Which side failed decides between 426 (the network) and 451 (us).
  let localFailed = false;
  local.on('error', () => {
    localFailed = true;
  });
  if (signal.aborted) {
    local.destroy();
    ctx.reply(426, 'Transfer aborted.');
    return;
  }
  // 150 before the connection exists: clients that connect only after
  // seeing 150 work too, and 425 after 150 is a valid sequence.
  ctx.reply(150, plan.opening);
  let data: Socket;
  try {
    data = await channel.connect(ctx.settings.dataTimeoutMs, signal);
  } catch {
    local.destroy();
    if (signal.aborted) ctx.reply(426, 'Transfer aborted.');
    else ctx.reply(425, "Can't open data connection.");
    return;
  }
  try {
    if (plan.direction === 'send') await pipeline(plan.source, data, { signal });
    else await pipeline(data, plan.sink, { signal });
    ctx.reply(226, plan.done);
    ctx.linger(data);
  } catch {
    local.destroy();
    data.destroy();
    if (signal.aborted) ctx.reply(426, 'Transfer aborted.');
    else if (localFailed) ctx.reply(451, 'Local error in processing.');
    else ctx.reply(426, 'Connection closed; transfer aborted.');
  }
}
