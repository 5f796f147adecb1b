#!/bin/sh
# Makes sure Debian's Chromium is installed for the browser tests (tests/web/). Playwright drives
# /usr/bin/chromium; we never download Playwright's own browser builds.
# Exit 0: /usr/bin/chromium is there (or was just installed). Non-zero: it is missing and we could
# not install it (not root, or apt-get failed); the message says what to install.
set -eu

BROWSER=${PATIENTGEN_CHROMIUM:-/usr/bin/chromium}

if [ -x "$BROWSER" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-browser: $BROWSER is missing; installing Debian's chromium package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    if [ -x "$BROWSER" ]; then
        echo "ensure-browser: installed $("$BROWSER" --version 2>/dev/null || echo chromium)" >&2
        exit 0
    fi
    echo "ensure-browser: apt-get finished but $BROWSER is still missing" >&2
    exit 1
fi

cat >&2 <<MSG
ensure-browser: $BROWSER is missing and this user cannot install it.
The browser tests (tests/web/) need Debian's Chromium. Install it as root:

    apt-get update && apt-get install -y chromium

(or run 'make test' as root, which installs it), then run the tests again.
MSG
exit 1
