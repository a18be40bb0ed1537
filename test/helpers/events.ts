/** Collects gateway events and lets a test wait for one: no sleeps. */
import type { EventSink, GatewayEvent } from '../../src/gateway/events.js';

type Match = (e: GatewayEvent) => boolean;

export class EventLog {
  readonly events: GatewayEvent[] = [];
  private waiters: Array<{ match: Match; resolve: (e: GatewayEvent) => void }> = [];

  readonly sink: EventSink = (e) => {
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(e)) return true;
      w.resolve(e);
      return false;
    });
  };

  of<K extends GatewayEvent['event']>(event: K): Extract<GatewayEvent, { event: K }>[] {
    return this.events.filter((e): e is Extract<GatewayEvent, { event: K }> => e.event === event);
  }

  /** Resolves with the first event (past or future) that matches; rejects after timeoutMs. */
  waitFor<K extends GatewayEvent['event']>(
    event: K,
    pred: (e: Extract<GatewayEvent, { event: K }>) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<Extract<GatewayEvent, { event: K }>> {
    const match = (e: GatewayEvent) => e.event === event && pred(e as Extract<GatewayEvent, { event: K }>);
    const past = this.events.find(match);
    if (past) return Promise.resolve(past as Extract<GatewayEvent, { event: K }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no ${event} event within ${timeoutMs} ms; saw: ${this.events.map((x) => x.event).join(', ')}`));
      }, timeoutMs);
      const done = (e: GatewayEvent) => {
        clearTimeout(timer);
        resolve(e as Extract<GatewayEvent, { event: K }>);
      };
      this.waiters.push({ match, resolve: done });
    });
  }
}
