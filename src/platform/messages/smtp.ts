import { createTransport, type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { MessageGateway, OutgoingMessage, SentMessage } from './messages.ts';
import { MessageGatewayError } from './twilio.ts';

export interface SmtpOptions {
  /** smtp://user:pass@host:587 (STARTTLS when offered) or smtps://...:465 (TLS from the start). */
  readonly url: string;
  /** The From header, e.g. `Casino <no-reply@casino.example>`. */
  readonly from: string;
  readonly timeoutMs?: number;
}

/** Email over SMTP (nodemailer). Plain text only: the links and codes Pitboss sends need no HTML. */
export class SmtpEmailGateway implements MessageGateway {
  readonly name = 'smtp';
  readonly #from: string;
  readonly #transport: Transporter<SMTPTransport.SentMessageInfo, SMTPTransport.Options>;

  constructor(options: SmtpOptions) {
    this.#from = options.from;
    const timeout = options.timeoutMs ?? 15_000;
    const transport: SMTPTransport.Options = { url: options.url, connectionTimeout: timeout, greetingTimeout: timeout, socketTimeout: timeout };
    this.#transport = createTransport(transport);
  }

  async send(message: OutgoingMessage): Promise<SentMessage> {
    if (message.channel !== 'email') throw new MessageGatewayError(this.name, 'CHANNEL_UNSUPPORTED', `cannot send ${message.channel}`);
    try {
      const info = await this.#transport.sendMail({ from: this.#from, to: message.to, subject: message.subject ?? '', text: message.text });
      if (info.rejected.length > 0) throw new MessageGatewayError(this.name, 'REJECTED', `the server refused ${info.rejected.length} recipient(s)`);
      return { gatewayMessageId: info.messageId, gateway: this.name };
    } catch (error) {
      if (error instanceof MessageGatewayError) throw error;
      const e = error as { code?: string; responseCode?: number; message?: string };
      throw new MessageGatewayError(this.name, e.responseCode ? `SMTP_${e.responseCode}` : (e.code ?? 'SMTP_ERROR'), e.message ?? String(error));
    }
  }

  close(): void {
    this.#transport.close();
  }
}
