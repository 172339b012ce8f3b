#!/usr/bin/env bash
# Checks systemd/fieldgate.service: `systemd-analyze verify` on a copy whose
# ExecStart names the given binary (verify wants it to exist), then the
# sandbox's exposure score from `systemd-analyze security`, which must stay
# below 3.0 ("OK").
#
#   bash packaging/check-unit.sh [BINARY]    (default bin/fieldgate)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(realpath "${1:-bin/fieldgate}")
[ -x "$bin" ] || { echo "check-unit: $bin is not an executable: make build first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit=$tmp/fieldgate.service
sed "s|^ExecStart=/usr/bin/fieldgate |ExecStart=$bin |" systemd/fieldgate.service >"$unit"
grep -q "^ExecStart=$bin " "$unit" || { echo "check-unit: no ExecStart=/usr/bin/fieldgate in the unit" >&2; exit 1; }

echo "check-unit: systemd-analyze verify"
systemd-analyze verify --man=no "$unit"

# --threshold=29: fail when the exposure (in tenths) is above 2.9.
echo "check-unit: systemd-analyze security (exposure must be below 3.0)"
if ! systemd-analyze security --offline=true --threshold=29 --no-pager "$unit" >"$tmp/security" 2>&1; then
	cat "$tmp/security"
	echo "check-unit: FAIL: exposure 3.0 or above, or systemd-analyze failed" >&2
	exit 1
fi
grep -E '✗|Overall exposure' "$tmp/security"
