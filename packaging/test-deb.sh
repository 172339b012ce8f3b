#!/usr/bin/env bash
# Tests the Debian packages `make release` wrote to dist/: every
# architecture's control fields, lintian on the amd64 package, then an
# install, an upgrade to the same package rebuilt with a bumped version, a
# removal and a purge with dpkg inside a throwaway Debian 12 chroot, where
# adduser, deb-systemd-helper and the maintainer scripts run for real.
#
# The chroot is a debootstrap minbase tree (packaging/debroot.sh: built once,
# cached in ~/.cache/fieldgate-debroot, unpacked afresh for every run).
# Needs root, debootstrap and lintian.
# shellcheck disable=SC2016 # dpkg-query formats are literal
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/debroot.sh
. packaging/debroot.sh

fail() {
	echo "test-deb: FAIL: $*" >&2
	exit 1
}
step() { echo "test-deb: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root (chroot, dpkg)"
for tool in debootstrap lintian dpkg-deb; do
	command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install $tool)"
done

# The release: one binary and one .deb per architecture.
shopt -s nullglob
bins=(dist/fieldgate_*_linux_amd64)
[ ${#bins[@]} = 1 ] || fail "want one dist/fieldgate_*_linux_amd64, have ${#bins[@]}: run make release"
version=${bins[0]#dist/fieldgate_}
version=${version%_linux_amd64}
declare -A want_arch=([amd64]=amd64 [arm64]=arm64 [armhf]=armv7 [armel]=armv6)
for arch in "${!want_arch[@]}"; do
	debs=(dist/fieldgate_*_"$arch".deb)
	[ ${#debs[@]} = 1 ] || fail "want one dist/fieldgate_*_$arch.deb, have ${#debs[@]}"
	[ "$(dpkg-deb -f "${debs[0]}" Architecture)" = "$arch" ] || fail "${debs[0]}: Architecture is not $arch"
	[ -x "dist/fieldgate_${version}_linux_${want_arch[$arch]}" ] || fail "no ${want_arch[$arch]} binary"
done
(cd dist && sha256sum --quiet -c SHA256SUMS) || fail "dist/SHA256SUMS does not match"
deb1=$(echo dist/fieldgate_*_amd64.deb)

step "lintian $deb1"
lintian --display-info --fail-on error "$deb1" || fail "lintian reports errors"

tmp=$(mktemp -d /tmp/fieldgate-test-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

step "rebuilding amd64 as version $version+1 for the upgrade"
make -s release RELEASE_ARCHES=amd64 VERSION="$version+1" DIST="$tmp/next" >/dev/null
deb2=$(echo "$tmp"/next/fieldgate_*_amd64.deb)
[ -f "$deb2" ] || fail "rebuild wrote no .deb"

# The throwaway root.
root=$tmp/root
debroot "$root" adduser procps || fail "cannot make the Debian root"
cp "$deb1" "$root/tmp/fieldgate-1.deb"
cp "$deb2" "$root/tmp/fieldgate-2.deb"

# in runs a command inside the root, where systemd is not running.
inroot() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }
installed_version() { inroot dpkg-query -W -f '${Version}' fieldgate 2>/dev/null || true; }
mode_of() { inroot stat -c '%U:%G %a' "$1"; }
# postinst runs the installed postinst as dpkg would.
postinst() {
	inroot env DPKG_MAINTSCRIPT_PACKAGE=fieldgate DPKG_MAINTSCRIPT_NAME=postinst \
		/var/lib/dpkg/info/fieldgate.postinst configure "$(installed_version)"
}
expect_mode() {
	local got
	got=$(mode_of "$1") || fail "$1 missing"
	[ "$got" = "$2" ] || fail "$1 is $got, want $2"
}

step "install $(dpkg-deb -f "$deb1" Version)"
inroot dpkg -i /tmp/fieldgate-1.deb </dev/null >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "dpkg -i"; }
[ "$(installed_version)" = "$(dpkg-deb -f "$deb1" Version)" ] || fail "installed version $(installed_version)"
inroot fieldgate version | grep -qF "fieldgate $version " || fail "fieldgate version: $(inroot fieldgate version)"
inroot test -f /usr/lib/systemd/system/fieldgate.service || fail "no unit"
inroot dpkg-query -W -f '${Conffiles}' fieldgate | grep -q '^ /etc/fieldgate/fieldgate.toml ' ||
	fail "fieldgate.toml is not a conffile"
inroot fieldgate check -c /etc/fieldgate/fieldgate.toml >/dev/null || fail "the shipped config fails check"
grep -q "does not pass" "$tmp/install.log" && fail "postinst says the shipped config fails check"
IFS=: read -r _ _ uid _ _ home shell < <(inroot getent passwd fieldgate) || fail "no fieldgate user"
[ "$uid" -lt 1000 ] || fail "fieldgate is not a system user (uid $uid)"
[ "$home" = /var/lib/fieldgate ] || fail "fieldgate's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "fieldgate's shell is $shell"
groups=" $(inroot id -nG fieldgate) "
for g in fieldgate dialout gpio; do
	[[ $groups == *" $g "* ]] || fail "fieldgate is not in $g (groups:$groups)"
done
gpio_gid=$(inroot getent group gpio | cut -d: -f3)
[ "$gpio_gid" -lt 1000 ] || fail "gpio is not a system group (gid $gpio_gid)"
expect_mode /etc/fieldgate "root:fieldgate 750"
expect_mode /etc/fieldgate/fieldgate.toml "root:fieldgate 640"
expect_mode /var/lib/fieldgate "fieldgate:fieldgate 750"
wants=/etc/systemd/system/multi-user.target.wants/fieldgate.service
enabled() { inroot test -L "$wants" -a -f "$wants"; } # a symlink to the unit
enabled || fail "the unit is not enabled"

step "postinst again (idempotent), and with a config that fails check"
postinst >/dev/null || fail "second postinst"
inroot cp /etc/fieldgate/fieldgate.toml /tmp/good.toml
echo 'unknown_key = 1' >>"$root/etc/fieldgate/fieldgate.toml"
postinst >"$tmp/bad.log" 2>&1 ||
	{ cat "$tmp/bad.log"; fail "postinst with a bad config failed"; }
grep -q "does not pass 'fieldgate check'" "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "no advice on a bad config"; }
inroot cp /tmp/good.toml /etc/fieldgate/fieldgate.toml

step "edit the config, upgrade to $(dpkg-deb -f "$deb2" Version)"
sed -i 's/^id = .*/id = "edited-gw"  # edited on site/' "$root/etc/fieldgate/fieldgate.toml"
edited=$(sha256sum <"$root/etc/fieldgate/fieldgate.toml")
inroot dpkg -i /tmp/fieldgate-2.deb </dev/null >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log"; fail "upgrade"; }
[ "$(installed_version)" = "$(dpkg-deb -f "$deb2" Version)" ] || fail "after upgrade: version $(installed_version)"
inroot fieldgate version | grep -qF "fieldgate $version+1 " || fail "upgraded binary: $(inroot fieldgate version)"
[ "$(sha256sum <"$root/etc/fieldgate/fieldgate.toml")" = "$edited" ] || fail "the edited config did not survive the upgrade"
inroot test ! -e /etc/fieldgate/fieldgate.toml.dpkg-new || fail "upgrade left fieldgate.toml.dpkg-new"
expect_mode /etc/fieldgate/fieldgate.toml "root:fieldgate 640"
enabled || fail "the unit is not enabled after upgrade"

step "remove"
echo "buffered" >"$root/var/lib/fieldgate/probe"
inroot dpkg -r fieldgate </dev/null >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log"; fail "dpkg -r"; }
[ "$(inroot dpkg-query -W -f '${db:Status-Abbrev}' fieldgate)" = "rc " ] || fail "after remove: not in config-files state"
inroot test ! -e /usr/bin/fieldgate || fail "binary left after remove"
[ "$(sha256sum <"$root/etc/fieldgate/fieldgate.toml")" = "$edited" ] || fail "remove did not keep the config"
inroot test -f /var/lib/fieldgate/probe || fail "remove deleted the buffer"
inroot getent passwd fieldgate >/dev/null || fail "remove deleted the user"

step "purge"
inroot dpkg -P fieldgate </dev/null >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "dpkg -P"; }
inroot dpkg-query -W fieldgate >/dev/null 2>&1 && fail "fieldgate still known to dpkg after purge"
for path in /etc/fieldgate /var/lib/fieldgate "$wants" /etc/systemd/system/fieldgate.service; do
	inroot test ! -e "$path" -a ! -L "$path" || fail "$path left after purge"
done
inroot getent passwd fieldgate >/dev/null && fail "user fieldgate left after purge"
inroot getent group fieldgate >/dev/null && fail "group fieldgate left after purge"

step "reinstall after purge"
inroot dpkg -i /tmp/fieldgate-2.deb </dev/null >"$tmp/reinstall.log" 2>&1 || { cat "$tmp/reinstall.log"; fail "reinstall"; }
inroot getent passwd fieldgate >/dev/null || fail "no user after reinstall"
inroot dpkg -P fieldgate </dev/null >/dev/null 2>&1 || fail "second purge"

step "ok"
