#!/usr/bin/env bash
# Check the systemd unit: `systemd-analyze verify` must be silent (it exits 0 even on
# "Failed to parse ..., ignoring" lines, so any output fails) and `systemd-analyze security`
# must rate it 2.0 or lower ("OK" or better). Run from scripts/test, or alone.
# Needs the built binary (verify checks that ExecStart= is executable): the unit's
# /usr/bin/eci-secret-sync is pointed at target/debug/eci-secret-sync in a temporary copy.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/deps.sh

UNIT=${1:-systemd/eci-secret-sync.service}
MAX_EXPOSURE=20 # tenths: 2.0

ensure_apt_package systemd-analyze systemd

cargo build --quiet --bin eci-secret-sync
binary="$(target_dir)/debug/eci-secret-sync"
[ -x "$binary" ] || { echo "error: $binary was not built" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=/usr/bin/eci-secret-sync |ExecStart=$binary |" "$UNIT" >"$work/eci-secret-sync.service"
grep -q "^ExecStart=$binary " "$work/eci-secret-sync.service" || { echo "error: no ExecStart=/usr/bin/eci-secret-sync in $UNIT" >&2; exit 1; }

echo "== systemd-analyze verify $UNIT"
if ! out=$(systemd-analyze verify "$work/eci-secret-sync.service" 2>&1) || [ -n "$out" ]; then
  echo "$out" >&2
  echo "error: systemd-analyze verify is not clean" >&2
  exit 1
fi

echo "== systemd-analyze security $UNIT (at most $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10)))"
set +e
report=$(systemd-analyze security --offline=yes --threshold="$MAX_EXPOSURE" "$work/eci-secret-sync.service" 2>&1)
rc=$?
set -e
echo "$report" | grep "Overall exposure level" || true
if [ "$rc" -ne 0 ]; then
  echo "$report" | grep '✗' >&2 || true
  echo "error: the unit's exposure is above $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10))" >&2
  exit 1
fi
