#!/usr/bin/env bash
# Install everything the tests need (Debian packages + Python packages) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=""
[ -x /usr/bin/storescu ] || need="$need dcmtk"
[ -x /usr/sbin/Orthanc ] || need="$need orthanc"
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || ls /usr/lib/orthanc/*DicomWeb* >/dev/null 2>&1 || need="$need orthanc-dicomweb"
[ -x /usr/bin/dciodvfy ] || need="$need dicom3tools"
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -e /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || need="$need fonts-droid-fallback"  # CJK on cloud films
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"  # app-state store on PostgreSQL
if [ -n "$need" ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
python3 -m pip install -q -e ".[test]"
# A throwaway PostgreSQL cluster of our own (temp folder, free loopback port, socket in the
# folder) for tests/auth/test_postgres_store.py: it never touches a cluster already installed
# or running, and goes away with the tests.
if [ -z "${YUNYING_TEST_POSTGRES:-}" ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  pgdir=$(mktemp -d /tmp/yunying-pg.XXXXXX)
  as_pg=()
  if [ "$(id -u)" -eq 0 ]; then  # initdb refuses root: run the cluster as Debian's postgres user
    chown postgres: "$pgdir"
    as_pg=(runuser -u postgres --)
  fi
  pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$pgdir/initdb.log"
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pgport -k $pgdir -c fsync=off" start >/dev/null
  trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null; rm -rf "$pgdir"' EXIT
  "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U postgres yunying_test
  export YUNYING_TEST_POSTGRES="postgresql+psycopg://postgres@127.0.0.1:$pgport/yunying_test"
fi
# --dist loadfile: a file's tests share one worker, so module-scoped servers start once per file and
# tests that build on the file's earlier ones (a queue filled by the previous test) see them
python3 -m pytest -n 2 --dist loadfile -p no:cacheprovider "$@"
