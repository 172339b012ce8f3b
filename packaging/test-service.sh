#!/usr/bin/env bash
# Runs the packaged service under a real systemd, sandbox and all: boots a
# Debian 12 tree in a container (systemd-nspawn, its own network namespace),
# installs the amd64 .deb from dist/ with dpkg while systemd runs, and checks
# that postinst starts the service on its valid starter config, that the
# sandboxed gateway reads a serial instrument on a pseudo-terminal through
# the dialout group, keeps its buffer with fsync=always, publishes over TLS
# checked against the system trust store in /etc/ssl to Mosquitto, reloads
# on SIGHUP with the same process, sets its timer slack through the system
# call filter, and that a purge stops it and cleans up.
#
# Not covered here: the DeviceAllow list. DevicePolicy=closed always admits
# pseudo-terminals, a container has no USB or UART ports to refuse or admit,
# and GPIO chips cannot be simulated in one (test/gpiovm covers the adapter).
#
# Needs root, debootstrap, systemd-nspawn (Debian package systemd-container)
# and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/debroot.sh
. packaging/debroot.sh

fail() {
	echo "test-service: FAIL: $*" >&2
	exit 1
}
step() { echo "test-service: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root"
for tool in debootstrap systemd-nspawn openssl; do
	command -v "$tool" >/dev/null || fail "$tool is not installed"
done
shopt -s nullglob
debs=(dist/fieldgate_*_amd64.deb)
[ ${#debs[@]} = 1 ] || fail "want one dist/fieldgate_*_amd64.deb, have ${#debs[@]}: run make release"

tmp=$(mktemp -d /tmp/fieldgate-test-service.XXXXXX)
# KEEP=1 keeps the container's tree for a look after a failure.
trap '[ -n "${KEEP:-}" ] && echo "test-service: kept $tmp" || rm -rf "$tmp"' EXIT
root=$tmp/root
debroot "$root" adduser procps systemd systemd-sysv dbus mosquitto mosquitto-clients socat ca-certificates ||
	fail "cannot make the Debian root"
cp "${debs[0]}" "$root/root/fieldgate.deb"

step "a test CA in the container's trust store, and a broker certificate"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=fieldgate-test-ca \
	-keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
	-keyout "$tmp/broker.key" -out "$tmp/broker.csr" 2>/dev/null
openssl x509 -req -in "$tmp/broker.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 2 \
	-extfile <(echo "subjectAltName=DNS:localhost") -out "$tmp/broker.pem" 2>/dev/null
cp "$tmp/ca.pem" "$root/usr/local/share/ca-certificates/fieldgate-test-ca.crt"
chroot "$root" update-ca-certificates >/dev/null
install -m 0644 "$tmp/ca.pem" "$tmp/broker.pem" "$root/etc/mosquitto/certs/"
install -m 0640 -g 0 "$tmp/broker.key" "$root/etc/mosquitto/certs/"
chroot "$root" chgrp mosquitto /etc/mosquitto/certs/broker.key
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
cat >"$root/etc/mosquitto/conf.d/fieldgate-test.conf" <<'EOF'
listener 8883 localhost
certfile /etc/mosquitto/certs/broker.pem
keyfile /etc/mosquitto/certs/broker.key
allow_anonymous true
EOF

# The serial instrument: a scale streaming a weight line every 200 ms on a
# pseudo-terminal that, like a USB adapter, belongs to the dialout group.
cat >"$root/usr/local/bin/scale" <<'EOF'
#!/bin/sh
while :; do
	echo "W: 12.5"
	sleep 0.2
done
EOF
chmod 0755 "$root/usr/local/bin/scale"
cat >"$root/etc/systemd/system/fieldgate-test-scale.service" <<'EOF'
[Unit]
Description=a serial scale on /dev/ttyFG0
[Service]
ExecStart=/usr/bin/socat PTY,link=/dev/ttyFG0,rawer,group=dialout,mode=660 EXEC:/usr/local/bin/scale
EOF

# The configuration the test switches to after the install.
cat >"$root/root/fieldgate.toml" <<'EOF'
[gateway]
id = "live"

[buffer]
fsync = "always"

[[upstream]]
name = "broker"
url = "mqtts://localhost:8883"   # no ca_file: the system trust store

[[serial]]
name = "scale"
port = "/dev/ttyFG0"
mode = "line"
  [[serial.point]]
  name = "weight"
  pattern = 'W:\s*([-0-9.]+)'
  type = "float64"
EOF

# The test itself runs inside the booted container, as a unit after
# multi-user.target; it writes PASS or FAIL to /root/result and powers off.
cat >"$root/root/live-test.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
exec >/root/live.log 2>&1
result() { echo "$1" >/root/result; systemctl poweroff; exit 0; }
trap 'echo "failed at line $LINENO"; result FAIL' ERR
check() { echo "check: $*"; }

systemctl start mosquitto fieldgate-test-scale
for _ in $(seq 50); do [ -e /dev/ttyFG0 ] && break; sleep 0.1; done
# Neither owner nor "other" may use it: only the dialout group lets the
# gateway in.
test "$(stat -L -c '%U:%G %a' /dev/ttyFG0)" = "root:dialout 660"

check "dpkg -i starts the service on the starter config"
dpkg -i /root/fieldgate.deb </dev/null
systemctl is-enabled fieldgate
systemctl is-active fieldgate

sub() {
	mosquitto_sub -h localhost -p 8883 --cafile /etc/ssl/certs/ca-certificates.crt -C 1 -W 30 "$@"
}

check "the sandboxed gateway reads the scale and publishes over TLS"
install -m 0640 -g fieldgate /root/fieldgate.toml /etc/fieldgate/fieldgate.toml
systemctl restart fieldgate   # Type=notify: returns once READY=1
msg=$(sub -t fieldgate/live/scale/weight)
echo "received: $msg"
[[ $msg == *'"value":12.5'* ]]
test "$(stat -c %U /var/lib/fieldgate)" = fieldgate
find /var/lib/fieldgate -type f | grep -q .
test -z "$(find /var/lib/fieldgate ! -user fieldgate)"

check "reload keeps the process"
pid=$(systemctl show -P MainPID fieldgate)
sed -i 's/^id = "live"/id = "live"\nlog_level = "debug"/' /etc/fieldgate/fieldgate.toml
systemctl reload fieldgate
test "$(systemctl show -P MainPID fieldgate)" = "$pid"
sub -t fieldgate/live/scale/weight
test "$(systemctl show -P NRestarts fieldgate)" = 0
systemctl is-active fieldgate

check "the sandbox, as systemd applies it"
systemd-analyze security --no-pager fieldgate | tail -1
grep -E '^(Uid|Gid|Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status"

check "the system call filter lets the gateway set its timer slack (1 ms: nothing polls)"
test "$(cat "/proc/$pid/timerslack_ns")" = 1000000

check "purge stops the service and removes its user and files"
dpkg -P fieldgate </dev/null
! systemctl is-active fieldgate
! getent passwd fieldgate
test ! -e /var/lib/fieldgate -a ! -e /etc/fieldgate
result PASS
EOF
chmod 0755 "$root/root/live-test.sh"
cat >"$root/etc/systemd/system/fieldgate-live-test.service" <<'EOF'
[Unit]
Description=fieldgate live service test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/live-test.sh
[Install]
WantedBy=multi-user.target
EOF
ln -s /etc/systemd/system/fieldgate-live-test.service \
	"$root/etc/systemd/system/multi-user.target.wants/fieldgate-live-test.service"
mkdir -p "$root/var/log/journal"

step "booting the container"
start=$(date +%s)
timeout 300 systemd-nspawn --quiet --register=no --keep-unit --private-network -D "$root" -b --console=pipe \
	>"$tmp/console.log" 2>&1 || true
step "container ran $(($(date +%s) - start)) s"
result=$(cat "$root/root/result" 2>/dev/null || echo "no result")
if [ "$result" != PASS ]; then
	cat "$root/root/live.log" 2>/dev/null || cat "$tmp/console.log"
	journalctl -D "$root/var/log/journal" --no-pager -u fieldgate -u mosquitto -u fieldgate-test-scale 2>/dev/null | tail -60
	tail -20 "$root/var/log/mosquitto/mosquitto.log" 2>/dev/null || true
	fail "$result"
fi
grep -E '^(check|received):|Overall exposure|^(Uid|Gid|Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):' "$root/root/live.log"
step "ok"
