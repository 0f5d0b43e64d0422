import { escapeHtml, layout, type Page } from './pages.ts';

// The hosted password reset page (the link in the reset email leads here): the same
// rules as the sign-in pages (no scripts, no external assets, escaped values).

export interface ResetForm {
  readonly action: string;
  readonly token: string;
  readonly error?: string;
}

/** A new password, typed twice; the token rides in a hidden field. */
export function resetPage(form: ResetForm): Page {
  const error = form.error ? `<p class="error" id="reset-error" role="alert">${escapeHtml(form.error)}</p>` : '';
  const described = form.error ? ' aria-describedby="password-hint reset-error" aria-invalid="true"' : ' aria-describedby="password-hint"';
  return layout(
    'Choose a new password',
    `<h1>Choose a new password</h1>
${error}
<form method="post" action="${escapeHtml(form.action)}" novalidate>
<input type="hidden" name="token" value="${escapeHtml(form.token)}">
<label for="password">New password</label>
<p id="password-hint">At least 10 characters. Not a common password, and not your login or email.</p>
<input type="password" id="password" name="password" autocomplete="new-password" required minlength="10" maxlength="128"${described} autofocus>
<label for="confirm">New password again</label>
<input type="password" id="confirm" name="confirm" autocomplete="new-password" required minlength="10" maxlength="128">
<button type="submit">Set the new password</button>
</form>`,
  );
}
