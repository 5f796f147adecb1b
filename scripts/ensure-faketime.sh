#!/bin/sh
# Makes sure libfaketime (Debian package faketime) is installed for the clock tests
# (tests/jobs/test_clock.py), which run a worker whose wall clock reads minutes off.
# Always exits 0: where it cannot be installed (not root, no apt-get) those tests are skipped and
# say why.
set -u

if ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-faketime: installing Debian's faketime package" >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -qq faketime >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq faketime >/dev/null; }; then
        exit 0
    fi
fi
echo "ensure-faketime: libfaketime is missing; the clock tests will be skipped" \
    "(install it as root: apt-get install -y faketime)" >&2
exit 0
