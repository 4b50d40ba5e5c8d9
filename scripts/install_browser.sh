#!/usr/bin/env bash
# Headless Chromium for the browser test (tests/test_serve_browser.py): Debian's chromium
# package, driven by Playwright's Python package with executable_path=/usr/bin/chromium.
# Playwright's own browser download (`playwright install`) is never used. Idempotent: does
# nothing when /usr/bin/chromium is already there. Needs root (or sudo) for apt-get.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "install_browser: /usr/bin/chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown')), skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: apt-get not found; install Chromium at /usr/bin/chromium by hand (the browser test skips without it)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-liberation
/usr/bin/chromium --version
