import type { FastifyReply } from 'fastify';
import type { HttpApp } from '../../platform/http/types.ts';
import type { Page } from './pages.ts';

// What the route files with hosted pages (sign-in, password reset, email verification)
// share: answering with a page, and reading the forms those pages post.

/** Answers with a page and the headers it was built with (its CSP nonce, no-store, no framing). */
export const sendPage = (reply: FastifyReply, status: number, page: Page) => reply.code(status).headers(page.headers).send(page.html);

/**
 * Parses application/x-www-form-urlencoded bodies into an object of their fields, in the
 * calling plugin's scope only: the JSON API elsewhere never accepts a form.
 */
export function acceptForms(app: HttpApp): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
}
