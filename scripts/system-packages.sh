#!/usr/bin/env bash
# Debian packages the tests drive from outside the Node.js process: Chromium (headless,
# through playwright-core: the hosted sign-in page, passkeys through its virtual
# authenticator) and oathtool (TOTP codes computed independently of the server).
# Installs only what is missing; needs root (CI runs as root) and Debian's registry.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v oathtool >/dev/null 2>&1 || missing+=(oathtool)
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages present: chromium, oathtool"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${missing[*]}"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  # Under CI the browser and TOTP tests must run; elsewhere they skip, loudly.
  if [ "${CI:-}" = "true" ]; then echo "could not install ${missing[*]}" >&2; exit 1; fi
  echo "WARNING: could not install ${missing[*]}; the tests that need them will be skipped" >&2
fi
