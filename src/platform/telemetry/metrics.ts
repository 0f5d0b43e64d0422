import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Registers a gauge whose value is read at scrape time. */
  gauge(name: string, help: string, read: () => Promise<number>): void;
}

/**
 * How often the event-loop delay is sampled (ms). Node's histogram records the whole
 * interval between samples, so the nodejs_eventloop_lag_p50/p90/p99/max_seconds
 * percentiles include it: an idle process shows about 0.010 s, and the delay is the rest.
 */
export const EVENT_LOOP_SAMPLE_MS = 10;

/** One registry per process (not the global one), so tests can build several apps. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  // Default metrics include event-loop lag (nodejs_eventloop_lag_seconds and its percentiles).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const httpRequests = new Counter({
    name: 'pitboss_http_requests_total',
    help: 'HTTP requests by route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'pitboss_http_request_duration_seconds',
    help: 'HTTP request latency by route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  return {
    registry,
    httpRequests,
    httpDuration,
    gauge(name, help, read) {
      new Gauge({
        name,
        help,
        registers: [registry],
        async collect() {
          try {
            this.set(await read());
          } catch {
            this.set(Number.NaN);
          }
        },
      });
    },
  };
}
