import { hasPermission, type Principal } from './principal.ts';

/** Holding this permission shows personal data unmasked to staff and services. */
export const PII_PERMISSION = 'pii.read';

export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at <= 0) return maskText(email);
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  const dot = domain.lastIndexOf('.');
  const host = dot > 0 ? domain.slice(0, dot) : domain;
  const tld = dot > 0 ? domain.slice(dot) : '';
  return `${local[0]}***@${host[0] ?? ''}***${tld}`;
}

export function maskText(value: string): string {
  if (value.length <= 2) return '*'.repeat(value.length);
  return `${value[0]}${'*'.repeat(Math.min(value.length - 2, 6))}${value[value.length - 1]}`;
}

/** Keeps the year only: enough for age bands, not enough to identify. */
export const maskDate = (isoDate: string): string => `${isoDate.slice(0, 4)}-**-**`;

export type Masker = (value: string) => string;

/**
 * May this principal see this subject's personal data? The subject themself may; staff
 * and services need PII_PERMISSION.
 */
export function canSeePii(principal: Principal, subjectPlayerId: string | null): boolean {
  if (principal.kind === 'player') return subjectPlayerId !== null && principal.id === subjectPlayerId;
  return hasPermission(principal, PII_PERMISSION);
}

/**
 * Returns a copy of `record` with the listed fields masked unless the principal may
 * see them. Every response that carries personal data goes through here.
 */
export function maskPii<T extends object>(
  record: T,
  fields: Partial<Record<keyof T, Masker>>,
  principal: Principal,
  subjectPlayerId: string | null,
): T {
  if (canSeePii(principal, subjectPlayerId)) return record;
  const copy: Record<string, unknown> = { ...(record as Record<string, unknown>) };
  for (const [field, mask] of Object.entries(fields) as [string, Masker][]) {
    const value = copy[field];
    if (typeof value === 'string') copy[field] = mask(value);
  }
  return copy as T;
}
