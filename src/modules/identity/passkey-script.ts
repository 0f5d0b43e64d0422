// The sign-in page's passkey step, run in the player's browser: served by Pitboss at
// PASSKEY_SCRIPT_PATH (no external assets) and allowed by the page's CSP nonce. It reads
// the options of navigator.credentials.get from the form (data-options, JSON with binary
// fields in base64url), asks the browser for an assertion, puts it in the hidden
// `assertion` field as JSON (the AuthenticationResponseJSON shape) and submits the form.
// Plain ES2017 with no JSON helpers of WebAuthn level 3, so older browsers run it too.

export const PASSKEY_SCRIPT = `(function () {
  'use strict';
  var form = document.getElementById('passkey-form');
  var button = document.getElementById('passkey-button');
  var field = document.getElementById('passkey-assertion');
  var status = document.getElementById('passkey-status');
  if (!form || !button || !field || !status) return;
  if (!window.PublicKeyCredential || !navigator.credentials || !navigator.credentials.get) {
    status.textContent = 'This browser cannot use passkeys or security keys here. Use a code if you have one.';
    button.disabled = true;
    return;
  }
  function fromBase64url(text) {
    var b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }
  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = '';
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  }
  var busy = false;
  button.addEventListener('click', function () {
    if (busy) return;
    busy = true;
    var options = JSON.parse(form.getAttribute('data-options'));
    button.setAttribute('aria-busy', 'true');
    status.textContent = 'Follow the instructions of your browser, passkey or security key.';
    navigator.credentials.get({
      publicKey: {
        challenge: fromBase64url(options.challenge),
        rpId: options.rpId,
        timeout: options.timeout,
        userVerification: options.userVerification,
        allowCredentials: (options.allowCredentials || []).map(function (c) {
          return { type: c.type, id: fromBase64url(c.id), transports: c.transports };
        }),
      },
    }).then(function (credential) {
      if (!credential) throw new Error('no credential');
      var r = credential.response;
      field.value = JSON.stringify({
        id: credential.id,
        rawId: toBase64url(credential.rawId),
        type: credential.type,
        authenticatorAttachment: credential.authenticatorAttachment || undefined,
        clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
        response: {
          clientDataJSON: toBase64url(r.clientDataJSON),
          authenticatorData: toBase64url(r.authenticatorData),
          signature: toBase64url(r.signature),
          userHandle: r.userHandle ? toBase64url(r.userHandle) : undefined,
        },
      });
      status.textContent = 'Signing you in.';
      form.submit();
    }).catch(function (error) {
      busy = false;
      button.removeAttribute('aria-busy');
      status.textContent = error && error.name === 'NotAllowedError'
        ? 'The passkey or security key was not used (cancelled or timed out). Try again, or use a code.'
        : 'This passkey or security key could not be used. Try again, or use a code.';
    });
  });
})();
`;
