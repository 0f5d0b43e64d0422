import type { Metrics } from '../telemetry/metrics.ts';

// What the edge records of every answered request, whichever way it was served: by
// Fastify (its onResponse hook and access log) or by a direct route (direct.ts).

/** The request metrics: one count and one duration, by method, route template and status. */
export function observeRequest(metrics: Metrics, method: string, route: string, status: number, ms: number): void {
  const labels = { method, route, status: String(status) };
  metrics.httpRequests.inc(labels);
  metrics.httpDuration.observe(labels, ms / 1000);
}

/** The access line's fields. */
export const accessLine = (method: string, url: string, statusCode: number, ms: number) => ({ method, url, statusCode, ms: Math.round(ms * 10) / 10 });
