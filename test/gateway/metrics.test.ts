/** /metrics is counted from the events, nothing else (DESIGN.md). */
import { expect, test } from 'vitest';
import net from 'node:net';
import { closeReasonLabel, GatewayMetrics } from '../../src/gateway/metrics.js';
import { PortPool } from '../../src/gateway/ports.js';
import type { GatewayEvent } from '../../src/gateway/events.js';
import { metric } from '../e2e/ops-process.js';

test('events → series', async () => {
  const pool = new PortPool({ lo: 40000, hi: 40009 });
  const m = new GatewayMetrics(() => ({ listeners: [{ name: 'pub', gateway: { pools: { passive: pool, active: new PortPool(undefined) } } }] }));
  const l = { listener: 'pub' };
  const events: GatewayEvent[] = [
    { event: 'session-open', session: 's1', client: '1.2.3.4:5', server: '', ...l },
    { event: 'session-open', session: 's2', client: '1.2.3.4:6', server: '', ...l },
    { event: 'login', session: 's1', user: 'alice', reply: 230, ...l },
    { event: 'login', session: 's2', user: 'mallory', reply: 530, ...l },
    { event: 'rewrite', session: 's1', direction: 'server->client', kind: '227', before: '', after: '', reason: '', offset: 0, delta: 0, ...l },
    { event: 'data-open', session: 's1', mode: 'passive', from: '', to: '', ...l },
    { event: 'data-nat', session: 's1', mode: 'active', action: 'map', from: '', via: '', to: '', durationMs: 3, ...l },
    { event: 'data-nat', session: 's1', mode: 'active', action: 'unmap', from: '', via: '', to: '', ...l },
    { event: 'transfer', session: 's1', user: 'alice', command: 'RETR', path: 'f', direction: 'download', bytes: 1000, durationMs: 2000, mode: 'passive', dataPath: 'relay', reply: 226, type: 'binary', ...l },
    { event: 'transfer', session: 's1', user: 'alice', command: 'STOR', path: 'g', direction: 'upload', bytesOmitted: 'kernel', durationMs: 20, mode: 'active', dataPath: 'kernel', reply: 451, type: 'binary', ...l },
    { event: 'refuse', session: 's2', kind: 'PORT', code: 'BOUNCE_ADDRESS', message: '', ...l },
    { event: 'session-close', session: 's2', reason: 'server error: read ECONNRESET', bytesUp: 0, bytesDown: 0, durationMs: 1, ...l },
    // A close without an open (never counted as active) must not drive the gauge below zero.
    { event: 'session-close', session: 'stray', reason: 'client quit', bytesUp: 0, bytesDown: 0, durationMs: 1, ...l },
    { event: 'reload', file: 'f', added: [], removed: [], changed: [] },
    { event: 'reload-failed', file: 'f', key: 'k', message: 'm' },
  ];
  for (const e of events) m.sink(e);
  const data = net.createServer();
  expect(await pool.listen(data, '127.0.0.1')).toBeGreaterThanOrEqual(40000);
  const text = await m.registry.metrics();
  data.close();
  expect(metric(text, 'ftp_alg_sessions_active', l)).toBe(1);
  expect(metric(text, 'ftp_alg_sessions_total', { ...l, reason: 'server_error' })).toBe(1);
  expect(metric(text, 'ftp_alg_logins_total', { ...l, result: 'ok' })).toBe(1);
  expect(metric(text, 'ftp_alg_logins_total', { ...l, result: 'failed' })).toBe(1);
  expect(metric(text, 'ftp_alg_rewrites_total', { ...l, kind: '227' })).toBe(1);
  expect(metric(text, 'ftp_alg_data_connections_total', { ...l, mode: 'passive', data_path: 'relay' })).toBe(1);
  expect(metric(text, 'ftp_alg_data_connections_total', { ...l, mode: 'active', data_path: 'kernel' })).toBe(1);
  expect(metric(text, 'ftp_alg_kernel_mapping_operations_total', { ...l })).toBe(2);
  expect(metric(text, 'ftp_alg_kernel_mapping_duration_seconds_count', { ...l, action: 'map' })).toBe(1);
  expect(metric(text, 'ftp_alg_transfer_bytes_total', { ...l, direction: 'download' })).toBe(1000);
  expect(metric(text, 'ftp_alg_transfers_total', { ...l, direction: 'upload', result: 'failed' })).toBe(1);
  expect(metric(text, 'ftp_alg_transfer_duration_seconds_bucket', { ...l, direction: 'download', le: '5' })).toBe(1);
  expect(metric(text, 'ftp_alg_refusals_total', { ...l, code: 'BOUNCE_ADDRESS' })).toBe(1);
  expect(metric(text, 'ftp_alg_reloads_total', { result: 'ok' })).toBe(1);
  expect(metric(text, 'ftp_alg_reloads_total', { result: 'failed' })).toBe(1);
  expect(metric(text, 'ftp_alg_ports_in_use', { ...l, pool: 'passive' })).toBe(1);
  expect(metric(text, 'ftp_alg_ports_free', { ...l, pool: 'passive' })).toBe(9);
  expect(text).not.toMatch(/ftp_alg_ports_free\{[^}]*pool="active"/);
});

test.each([
  ['client quit', 'client_quit'],
  ['server error: read ECONNRESET', 'server_error'],
  ['TOO_MANY_SESSIONS', 'TOO_MANY_SESSIONS'],
  ['idle for 3000 ms', 'other'],
  ['', 'other'],
])('close reason %j → label %j (bounded set, no peer text)', (reason, label) => {
  expect(closeReasonLabel(reason)).toBe(label);
});
