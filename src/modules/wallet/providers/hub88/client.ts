import type { KeyLike } from 'node:crypto';
import { SIGNATURE_HEADER, signHub88 } from './signature.ts';

// Hub88's side of a call, for tests, the bench and demos: sign the exact bytes sent.

export type Hub88Path = 'user/info' | 'user/balance' | 'transaction/bet' | 'transaction/win' | 'transaction/rollback';

export interface Hub88Client {
  readonly baseUrl: string;
  readonly privateKey: KeyLike;
}

/** The body as it will be sent and the headers that go with it (for callers with their own HTTP client). */
export function hub88Request(privateKey: KeyLike, body: Record<string, unknown>): { body: string; headers: Record<string, string> } {
  const text = JSON.stringify(body);
  return { body: text, headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signHub88(privateKey, text) } };
}

/** Signs and posts one call, e.g. `hub88Call(client, 'transaction/bet', {...})`. */
export async function hub88Call(client: Hub88Client, path: Hub88Path, body: Record<string, unknown>): Promise<{ httpStatus: number; body: Record<string, unknown> }> {
  const signed = hub88Request(client.privateKey, body);
  const res = await fetch(`${client.baseUrl}/providers/hub88/${path}`, { method: 'POST', headers: signed.headers, body: signed.body });
  return { httpStatus: res.status, body: (await res.json()) as Record<string, unknown> };
}
