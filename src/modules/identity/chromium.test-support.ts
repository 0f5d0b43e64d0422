import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import type { BrowserContext, Page } from 'playwright-core';
import { registration, startTestApp, type TestApp } from '../../../test/support/app.ts';
import type { DatabaseKind } from '../../../test/support/databases.ts';
import { systemContext } from '../../platform/auth/principal.ts';
import { freePort } from './browser.test-support.ts';
import { identityModule, type IdentityApi } from './index.ts';

// What the Chromium tests share: the server listening on a real port at
// http://localhost:<port> (PUBLIC_URL, so the WebAuthn RP ID is `localhost`, which
// browsers treat as a secure context), an OAuth client configured by openid-client
// from discovery, and the authorization-code flow driven through a Chromium page.

export interface Server {
  readonly app: TestApp;
  /** The app's redirect URI: a page on 127.0.0.1 that only says the browser got back. */
  readonly redirect: string;
  readonly base: string;
  readonly issuer: string;
  /** A public client (PKCE, no secret) with refresh tokens, configured from discovery. */
  readonly config: oidc.Configuration;
  close(): Promise<void>;
}

export interface Player {
  readonly id: string;
  readonly login: string;
  readonly password: string;
  /** An access token of the player's, for the API, as after a sign-in with a second factor. */
  readonly token: string;
  /** An access token as after a password-only sign-in. */
  readonly passwordToken: string;
}

export async function startServer(kind: DatabaseKind, env: Record<string, string> = {}): Promise<Server> {
  const appPage: HttpServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('back at the app'));
  appPage.listen(0, '127.0.0.1');
  await once(appPage, 'listening');
  const redirect = `http://127.0.0.1:${(appPage.address() as AddressInfo).port}/callback`;
  const port = await freePort();
  const base = `http://localhost:${port}`;
  const app = await startTestApp(kind, { PUBLIC_URL: base, ...env });
  // Fastify listens on every address of `localhost` (127.0.0.1 and ::1).
  await app.server.app.listen({ port, host: 'localhost' });
  const identity = app.server.runtime.modules.get(identityModule.name)!.api as IdentityApi;
  const created = await identity.clients.create(systemContext('test'), {
    name: 'Browser test client',
    grantTypes: ['authorization_code', 'refresh_token'],
    redirectUris: [redirect],
    public: true,
  });
  const config = await oidc.discovery(new URL(identity.issuer), created.client.clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  return {
    app,
    redirect,
    base,
    issuer: identity.issuer,
    config,
    async close() {
      appPage.closeAllConnections();
      await new Promise((resolve) => appPage.close(resolve));
      await app.close();
    },
  };
}

export async function newPlayer(server: Server): Promise<Player> {
  const body = registration();
  const res = await fetch(`${server.base}/v1/players`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 201, await res.clone().text());
  const id = ((await res.json()) as { id: string }).id;
  // As from a sign-in with a second factor: managing factors needs a fresh strong sign-in
  // once the player has one (step-up); \`passwordToken\` is a password-only sign-in's.
  const token = await server.app.playerToken(id, { acr: 'urn:pitboss:acr:2fa', amr: ['pwd', 'hwk', 'mfa'] });
  return { id, login: String(body.login), password: String(body.password), token, passwordToken: await server.app.playerToken(id) };
}

/** A JSON call to the API with the player's token. */
export async function api(server: Server, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${server.base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

/**
 * One authorization request in a page: the page goes to the authorization URL (and on
 * to the sign-in page); whatever the test does there ends, when it succeeds, at the
 * client's redirect URI, which the page never really loads: the URL is caught.
 */
export class Authorization {
  readonly page: Page;
  readonly verifier: string;
  readonly state: string;
  readonly #server: Server;
  #callback: URL | undefined;
  #arrived: () => void = () => {};
  readonly #arrival: Promise<void>;

  private constructor(server: Server, page: Page, verifier: string, state: string) {
    this.#server = server;
    this.page = page;
    this.verifier = verifier;
    this.state = state;
    this.#arrival = new Promise((resolve) => (this.#arrived = resolve));
  }

  static async start(server: Server, context: BrowserContext, page?: Page): Promise<Authorization> {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(server.config, {
      redirect_uri: server.redirect,
      scope: 'openid offline_access profile api',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      // OpenID Connect grants offline_access (a refresh token) only with prompt=consent.
      prompt: 'consent',
      state,
    });
    // A new sign-in each time: no provider session from an earlier one.
    await context.clearCookies();
    const p = page ?? (await context.newPage());
    const flow = new Authorization(server, p, verifier, state);
    p.on('request', (request) => {
      if (!request.url().startsWith(server.redirect) || flow.#callback) return;
      flow.#callback = new URL(request.url());
      flow.#arrived();
    });
    await p.goto(url.href);
    assert.match(new URL(p.url()).pathname, /^\/sign-in\/[\w-]+$/, `expected the sign-in page, got ${p.url()}`);
    return flow;
  }

  /** Fills the password form by its labels and submits it. */
  async password(login: string, password: string): Promise<void> {
    await this.page.getByLabel('Login or email').fill(login);
    await this.page.getByLabel('Password').fill(password);
    await this.page.getByRole('button', { name: 'Sign in' }).click();
    await this.page.waitForLoadState();
  }

  /** The callback URL once the browser got there (within `ms`), or undefined. */
  async callback(ms = 10_000): Promise<URL | undefined> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#arrival, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
    // Let the page finish loading the app's page, so that the next navigation does not race it.
    if (this.#callback) await this.page.waitForURL((url) => url.href.startsWith(this.#server.redirect), { waitUntil: 'load' });
    return this.#callback;
  }

  /** Exchanges the code with openid-client (PKCE verifier and state checked). */
  async tokens(): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers> {
    const callback = await this.callback();
    assert.ok(callback, `the browser did not reach the app; it is at ${this.page.url()}:\n${(await this.page.content().catch(() => '')).slice(0, 800)}`);
    return oidc.authorizationCodeGrant(this.#server.config, callback, { pkceCodeVerifier: this.verifier, expectedState: this.state });
  }
}
