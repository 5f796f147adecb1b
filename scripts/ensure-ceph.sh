#!/bin/sh
# Makes sure Ceph's S3 gateway and the daemons of a one-node cluster are installed for the
# object-storage tests (tests/s3_server.py starts them in a temporary folder; nothing is
# configured system-wide and no service is enabled).
# Exit 0: the programs are there (or were just installed). Non-zero: they are missing and we
# could not install them (not root, or apt-get failed); the message says what to install.
set -eu

PROGRAMS="monmaptool ceph-mon ceph-osd ceph radosgw radosgw-admin"

missing() {
    for p in $PROGRAMS; do
        command -v "$p" >/dev/null 2>&1 || { echo "$p"; return 0; }
    done
    return 1
}

if ! missing >/dev/null; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-ceph: $(missing) is missing; installing Debian's radosgw, ceph-mon and ceph-osd" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends radosgw ceph-mon ceph-osd >/dev/null
    if ! missing >/dev/null; then
        echo "ensure-ceph: installed $(radosgw --version 2>/dev/null || echo radosgw)" >&2
        exit 0
    fi
    echo "ensure-ceph: apt-get finished but $(missing) is still missing" >&2
    exit 1
fi

cat >&2 <<MSG
ensure-ceph: $(missing) is missing and this user cannot install it.
The object-storage tests (tests/jobs/test_object_storage.py, tests/jobs/test_hosts_netns.py)
run Ceph's S3 gateway on a one-node cluster. Install it as root:

    apt-get update && apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd

(or run 'make test' as root, which installs it), then run the tests again.
MSG
exit 1
