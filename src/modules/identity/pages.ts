import { randomBytes } from 'node:crypto';

// Server-rendered pages of the hosted sign-in: no scripts, no external assets, one
// inline style sheet allowed by a per-response nonce. Every value is escaped.

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => escapes[c]!);

export interface Page {
  readonly html: string;
  readonly headers: Readonly<Record<string, string>>;
}

const STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
  body { margin: 0; display: grid; place-items: center; min-height: 100vh; background: Canvas; color: CanvasText; }
  main { width: min(24rem, 100% - 2rem); padding: 2rem 1.5rem; border: 1px solid GrayText; border-radius: 0.5rem; }
  h1 { font-size: 1.5rem; margin: 0 0 1rem; }
  label { display: block; font-weight: 600; margin-top: 1rem; }
  input[type=text], input[type=password] { box-sizing: border-box; width: 100%; font: inherit; padding: 0.5rem; margin-top: 0.25rem; border: 1px solid GrayText; border-radius: 0.25rem; }
  input:focus-visible, button:focus-visible { outline: 3px solid Highlight; outline-offset: 2px; }
  button { font: inherit; font-weight: 600; margin-top: 1.5rem; width: 100%; padding: 0.6rem; border-radius: 0.25rem; border: 1px solid ButtonText; cursor: pointer; }
  .error { border-left: 4px solid #b00020; padding: 0.5rem 0.75rem; margin: 0 0 1rem; }
  .secondary { background: transparent; }
`;

export function layout(title: string, body: string): Page {
  const nonce = randomBytes(16).toString('base64');
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
  return {
    html,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; base-uri 'none'; frame-ancestors 'none'`,
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    },
  };
}

export interface SignInForm {
  readonly action: string;
  readonly clientName: string;
  readonly login?: string;
  readonly error?: string;
}

/** The sign-in form; an error is announced (role=alert) and tied to the fields it concerns. */
export function signInPage(form: SignInForm): Page {
  const error = form.error ? `<p class="error" id="sign-in-error" role="alert">${escapeHtml(form.error)}</p>` : '';
  const described = form.error ? ' aria-describedby="sign-in-error" aria-invalid="true"' : '';
  return layout(
    'Sign in',
    `<h1>Sign in</h1>
<p>to continue to ${escapeHtml(form.clientName)}</p>
${error}
<form method="post" action="${escapeHtml(form.action)}" novalidate>
<label for="login">Login or email</label>
<input type="text" id="login" name="login" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="320" value="${escapeHtml(form.login ?? '')}"${described}${form.login ? '' : ' autofocus'}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required maxlength="512"${described}${form.login ? ' autofocus' : ''}>
<button type="submit">Sign in</button>
</form>`,
  );
}

export interface CodeForm {
  readonly action: string;
  readonly clientName: string;
  readonly error?: string;
}

/** The second step of a sign-in: a code from the authenticator app, or a recovery code. */
export function codePage(form: CodeForm): Page {
  const error = form.error ? `<p class="error" id="code-error" role="alert">${escapeHtml(form.error)}</p>` : '';
  const described = form.error ? ' aria-describedby="code-hint code-error" aria-invalid="true"' : ' aria-describedby="code-hint"';
  return layout(
    'Enter your code',
    `<h1>Enter your code</h1>
<p>to continue to ${escapeHtml(form.clientName)}</p>
${error}
<form method="post" action="${escapeHtml(form.action)}" novalidate>
<label for="code">Authentication code</label>
<p id="code-hint">The 6-digit code from your authenticator app, or one of your recovery codes.</p>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required maxlength="40"${described} autofocus>
<button type="submit">Continue</button>
</form>`,
  );
}

/** A dead end the user can only leave by starting over in the app. */
export function messagePage(title: string, message: string): Page {
  return layout(title, `<h1>${escapeHtml(title)}</h1>\n<p role="alert">${escapeHtml(message)}</p>`);
}

/** The end-session confirmation; `form` is the provider's hidden form (its xsrf token). */
export function signOutPage(form: string, host: string): Page {
  return layout(
    'Sign out',
    `<h1>Sign out</h1>
<p>Do you want to sign out of ${escapeHtml(host)}?</p>
${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out</button>
<button type="submit" form="op.logoutForm" class="secondary">No, stay signed in</button>`,
  );
}
