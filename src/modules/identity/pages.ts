import { randomBytes } from 'node:crypto';

// Server-rendered pages of the hosted sign-in: no external assets, one inline style
// sheet allowed by a per-response nonce. Every value is escaped. The one script (the
// passkey step's, served by Pitboss at PASSKEY_SCRIPT_PATH) is allowed by the same nonce.

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
  .passkey { margin: 0 0 1.5rem; }
`;

export function layout(title: string, body: string, scriptSrc?: string): Page {
  const nonce = randomBytes(16).toString('base64');
  const script = scriptSrc ? `<script nonce="${nonce}" src="${escapeHtml(scriptSrc)}" defer></script>\n` : '';
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style nonce="${nonce}">${STYLE}</style>
${script}</head>
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
      'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}';${scriptSrc ? ` script-src 'nonce-${nonce}';` : ''} base-uri 'none'; frame-ancestors 'none'`,
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
  /** A staff client's form: staff sign in with their email. */
  readonly staff?: boolean;
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
<label for="login">${form.staff ? 'Staff email' : 'Login or email'}</label>
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
  /** The account's phone number, masked, when it can get a code by SMS instead. */
  readonly smsPhone?: string;
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
</form>${form.smsPhone ? smsOffer(form.action, form.smsPhone) : ''}`,
  );
}

const smsOffer = (action: string, phone: string): string => `
<form method="post" action="${escapeHtml(action)}">
<button type="submit" name="sms" value="send" class="secondary">Send a code by SMS to ${escapeHtml(phone)}</button>
</form>`;

export interface SmsCodeForm {
  readonly action: string;
  readonly clientName: string;
  /** The number the code went to, masked. */
  readonly phone: string;
  readonly error?: string;
  /** Announced above the form (a code was sent, or when the next one may be asked for). */
  readonly notice?: string;
}

/** The second step with an SMS code: the code field and a button to send a new one. */
export function smsCodePage(form: SmsCodeForm): Page {
  const error = form.error ? `<p class="error" id="code-error" role="alert">${escapeHtml(form.error)}</p>` : '';
  const notice = form.notice ? `<p role="status">${escapeHtml(form.notice)}</p>` : '';
  const described = form.error ? ' aria-describedby="code-hint code-error" aria-invalid="true"' : ' aria-describedby="code-hint"';
  return layout(
    'Enter the code we sent you',
    `<h1>Enter the code we sent you</h1>
<p>to continue to ${escapeHtml(form.clientName)}</p>
${notice}${error}
<form method="post" action="${escapeHtml(form.action)}" novalidate>
<label for="code">SMS code</label>
<p id="code-hint">The 6-digit code sent by SMS to ${escapeHtml(form.phone)}. It is valid for 5 minutes.</p>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required maxlength="6"${described} autofocus>
<button type="submit">Continue</button>
</form>
<form method="post" action="${escapeHtml(form.action)}">
<button type="submit" name="sms" value="send" class="secondary">Send a new code</button>
</form>`,
  );
}

/** Where the sign-in page's passkey script is served (by Pitboss itself). */
export const PASSKEY_SCRIPT_PATH = '/sign-in/assets/passkey.js';

export interface SecondFactorForm extends CodeForm {
  /** The player has an authenticator app: the code form is offered too. */
  readonly totp: boolean;
  /** navigator.credentials.get options (JSON) for this interaction's challenge. */
  readonly passkeyOptions: string;
  /** Which of the two the error is about (the code field is marked invalid only for `code`). */
  readonly failed?: 'passkey' | 'code';
}

/**
 * The second step for a player with passkeys or security keys: the passkey button (its
 * script posts the assertion in a hidden field), with an authenticator app the code form,
 * and with a phone number the offer of an SMS code. The button works only with scripts;
 * the forms without.
 */
export function secondFactorPage(form: SecondFactorForm): Page {
  const error = form.error ? `<p class="error" id="code-error" role="alert">${escapeHtml(form.error)}</p>` : '';
  const described = form.error && form.failed === 'code' ? ' aria-describedby="code-hint code-error" aria-invalid="true"' : ' aria-describedby="code-hint"';
  const buttonDescribed = form.error && form.failed !== 'code' ? 'code-error passkey-status' : 'passkey-status';
  const code = form.totp
    ? `<form method="post" action="${escapeHtml(form.action)}" novalidate>
<label for="code">Or enter an authentication code</label>
<p id="code-hint">The 6-digit code from your authenticator app, or one of your recovery codes.</p>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required maxlength="40"${described}>
<button type="submit" class="secondary">Continue with the code</button>
</form>`
    : '';
  return layout(
    'Confirm it is you',
    `<h1>Confirm it is you</h1>
<p>to continue to ${escapeHtml(form.clientName)}</p>
${error}
<form method="post" action="${escapeHtml(form.action)}" id="passkey-form" class="passkey" data-options="${escapeHtml(form.passkeyOptions)}">
<input type="hidden" name="assertion" id="passkey-assertion" value="">
<button type="button" id="passkey-button" aria-describedby="${buttonDescribed}" autofocus>Use a passkey or security key</button>
<p id="passkey-status" role="status" aria-live="polite"><noscript>Passkeys and security keys need JavaScript in this browser.${form.totp || form.smsPhone ? ' Use a code instead.' : ''}</noscript></p>
</form>
${code}${form.smsPhone ? smsOffer(form.action, form.smsPhone) : ''}`,
    PASSKEY_SCRIPT_PATH,
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

export interface EnrolTotpForm {
  readonly action: string;
  readonly clientName: string;
  /** The otpauth URI as a QR code (an SVG document this module renders, no user data). */
  readonly qrSvg: string;
  /** Base32, for apps that cannot scan. */
  readonly secret: string;
  /** Why the account must enrol now. */
  readonly reason: 'staff' | 'policy';
  readonly error?: string;
}

/**
 * Enrolment of an authenticator app in the middle of a sign-in that requires MFA (staff
 * always, players whose account requires it) when no factor is enrolled yet.
 */
export function enrolTotpPage(form: EnrolTotpForm): Page {
  const error = form.error ? `<p class="error" id="code-error" role="alert">${escapeHtml(form.error)}</p>` : '';
  const described = form.error ? ' aria-describedby="code-hint code-error" aria-invalid="true"' : ' aria-describedby="code-hint"';
  const why =
    form.reason === 'staff'
      ? 'Staff accounts must use an authenticator app. Set it up now to continue.'
      : 'Your account requires a second factor. Set up an authenticator app now to continue.';
  const qr = form.qrSvg.replace('<svg ', '<svg width="220" height="220" role="img" aria-label="QR code for your authenticator app" ');
  // Base32 in groups of four, easier to type.
  const secret = form.secret.replace(/(.{4})(?=.)/g, '$1 ');
  return layout(
    'Set up your authenticator app',
    `<h1>Set up your authenticator app</h1>
<p>to continue to ${escapeHtml(form.clientName)}</p>
<p>${escapeHtml(why)}</p>
${error}
<p>Scan this code with your authenticator app:</p>
${qr}
<p>Or enter this key: <code id="totp-secret">${escapeHtml(secret)}</code></p>
<form method="post" action="${escapeHtml(form.action)}" novalidate>
<label for="code">Code from the app</label>
<p id="code-hint">Enter the 6-digit code the app shows, to confirm it is set up.</p>
<input type="text" id="code" name="enrol_code" inputmode="numeric" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required maxlength="6"${described} autofocus>
<button type="submit">Confirm</button>
</form>`,
  );
}

/** The recovery codes of a just-enrolled authenticator app, shown once; continuing completes the sign-in. */
export function recoveryCodesPage(form: { readonly action: string; readonly clientName: string; readonly codes: readonly string[] }): Page {
  const codes = form.codes.map((c) => `<li><code>${escapeHtml(c)}</code></li>`).join('\n');
  return layout(
    'Save your recovery codes',
    `<h1>Save your recovery codes</h1>
<p role="status">Your authenticator app is set up.</p>
<p>Each of these codes signs you in once if you lose your phone. Store them somewhere safe now: they are not shown again.</p>
<ul id="recovery-codes">
${codes}
</ul>
<form method="post" action="${escapeHtml(form.action)}">
<button type="submit" name="continue" value="1">I have saved them: continue to ${escapeHtml(form.clientName)}</button>
</form>`,
  );
}

/** The page an email verification link opens: one button, because opening a link must not verify (mail scanners open them). */
export function confirmEmailPage(action: string): Page {
  return layout(
    'Confirm your email address',
    `<h1>Confirm your email address</h1>
<p>Press the button to confirm that this email address is yours.</p>
<form method="post" action="${escapeHtml(action)}">
<button type="submit">Confirm my email address</button>
</form>`,
  );
}
