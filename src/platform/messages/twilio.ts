import type { MessageGateway, OutgoingMessage, SentMessage } from './messages.ts';

/** A gateway refused a message or could not be reached; `code` is the gateway's own (Twilio's error code) or ours. */
export class MessageGatewayError extends Error {
  readonly gateway: string;
  readonly code: string;
  readonly status: number | undefined;

  constructor(gateway: string, code: string, message: string, status?: number) {
    super(`${gateway}: ${message} (${code})`);
    this.name = 'MessageGatewayError';
    this.gateway = gateway;
    this.code = code;
    this.status = status;
  }
}

export interface TwilioOptions {
  /** https://api.twilio.com, or an imitation of it in tests. */
  readonly baseUrl: string;
  readonly accountSid: string;
  readonly authToken: string;
  /** The sender: an E.164 number or a messaging service's alphanumeric id. */
  readonly from: string;
  readonly timeoutMs?: number;
}

/**
 * SMS through Twilio's Messages API (and any provider that speaks it): POST
 * {base}/2010-04-01/Accounts/{AccountSid}/Messages.json with basic auth AccountSid:AuthToken
 * and the form fields To, From, Body; 201 with the message's `sid`. A refusal is thrown
 * with Twilio's error code; an unreachable or slow gateway (past the timeout) too.
 */
export class TwilioSmsGateway implements MessageGateway {
  readonly name = 'twilio';
  readonly #options: TwilioOptions;

  constructor(options: TwilioOptions) {
    this.#options = options;
  }

  async send(message: OutgoingMessage): Promise<SentMessage> {
    if (message.channel !== 'sms') throw new MessageGatewayError(this.name, 'CHANNEL_UNSUPPORTED', `cannot send ${message.channel}`);
    const { baseUrl, accountSid, authToken, from, timeoutMs = 10_000 } = this.#options;
    const url = `${baseUrl.replace(/\/+$/, '')}/2010-04-01/Accounts/${encodeURIComponent(accountSid)}/Messages.json`;
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: new URLSearchParams({ To: message.to, From: from, Body: message.text }).toString(),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      throw new MessageGatewayError(this.name, timedOut ? 'TIMEOUT' : 'UNREACHABLE', timedOut ? `no answer within ${timeoutMs} ms` : String((error as Error).message));
    }
    const text = await response.text();
    let body: { sid?: unknown; code?: unknown; message?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // Not JSON: a proxy's error page, reported by status below.
    }
    if (response.status !== 201 && response.status !== 200) {
      const code = typeof body.code === 'number' || typeof body.code === 'string' ? String(body.code) : `HTTP_${response.status}`;
      throw new MessageGatewayError(this.name, code, typeof body.message === 'string' ? body.message : `HTTP ${response.status}`, response.status);
    }
    if (typeof body.sid !== 'string' || body.sid === '') throw new MessageGatewayError(this.name, 'NO_SID', 'accepted without a message sid', response.status);
    return { gatewayMessageId: body.sid, gateway: this.name };
  }
}
