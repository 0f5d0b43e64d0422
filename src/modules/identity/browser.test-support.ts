import { createServer } from 'node:net';

// A browser without a browser: plain HTTP with a cookie jar (name, value and path;
// no domains, every request goes to the one server under test) and manual redirects.
// Enough to drive the hosted sign-in page until headless Chromium is installed.

interface Cookie {
  value: string;
  path: string;
}

export interface Hop {
  readonly url: string;
  readonly status: number;
  readonly location: string | undefined;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
}

export class Browser {
  readonly #jar = new Map<string, Cookie>();
  readonly #headers: Readonly<Record<string, string>>;

  /** `headers` go with every request (e.g. X-Forwarded-For to stand for another address). */
  constructor(headers: Record<string, string> = {}) {
    this.#headers = headers;
  }

  #cookieHeader(url: URL): string {
    return [...this.#jar]
      .filter(([, c]) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
  }

  #store(response: Response, url: URL): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      const path = attributes.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? url.pathname.replace(/\/[^/]*$/, '/') ?? '/';
      const expired = attributes.some((a) => /^expires=thu, 01 jan 1970/i.test(a)) || attributes.some((a) => /^max-age=0$/i.test(a));
      if (expired || value === '') this.#jar.delete(name);
      else this.#jar.set(name, { value, path });
    }
  }

  /** One request, no redirect followed. */
  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Hop> {
    const target = new URL(url);
    const headers: Record<string, string> = { ...this.#headers, accept: 'text/html' };
    const cookie = this.#cookieHeader(target);
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(target, { method: init.method ?? (init.form ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.#store(response, target);
    const location = response.headers.get('location') ?? undefined;
    return {
      url: target.href,
      status: response.status,
      location: location ? new URL(location, target).href : undefined,
      body: await response.text(),
      headers: Object.fromEntries(response.headers),
    };
  }

  /** Follows redirects from `url` until one leaves for `stopAt` (returned, not fetched) or a page answers. */
  async follow(url: string, stopAt: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Hop> {
    let hop = await this.request(url, init);
    for (let i = 0; i < 10 && hop.location; i++) {
      if (hop.location.startsWith(stopAt)) return hop;
      hop = await this.request(hop.location);
    }
    return hop;
  }

  has(name: string): boolean {
    return this.#jar.has(name);
  }
}

/** The value of a form field in a page. */
export function field(html: string, name: string): string | undefined {
  const input = new RegExp(`<input[^>]*name="${name}"[^>]*>`).exec(html)?.[0];
  return input ? /value="([^"]*)"/.exec(input)?.[1] : undefined;
}

/** The action of the first form in a page. */
export function formAction(html: string): string | undefined {
  return /<form[^>]*action="([^"]+)"/.exec(html)?.[1]?.replace(/&amp;/g, '&');
}

/** A port nothing listens on now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
