#!/usr/bin/env bash
# Runs the gpio adapter's tests against the real kernel GPIO uAPI: installs
# what is missing, builds (or reuses) a minimal Linux kernel with gpio-sim,
# then runs the host test in this directory, which boots that kernel in qemu
# with the adapter's test binary as /init and fails unless every test passes.
#
# Usage: test/gpiovm/run.sh [go test flags for the host test]
#        test/gpiovm/run.sh kernel   # only build or reuse; print the bzImage path
#
# Environment:
#   FIELDGATE_KERNEL_CACHE  where built kernels are kept, one directory per hash
#                           of kernel.config and the kernel source version
#                           (default ${XDG_CACHE_HOME:-$HOME/.cache}/fieldgate-kernel)
#   FIELDGATE_GPIOVM_KVM=1  boot with KVM (off by default: on nested /dev/kvm
#                           qemu hangs; plain emulation boots in seconds)
#   FIELDGATE_GPIOVM_RUN    -test.run pattern for the tests inside the VM
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
fragment=$here/kernel.config
srcpkg=linux-source-6.1
tarball=/usr/src/$srcpkg.tar.xz
cache=${FIELDGATE_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fieldgate-kernel}

log() { printf 'gpiovm: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# install_missing installs, with apt-get, the Debian packages whose tools are
# absent. The kernel build needs a C toolchain, flex, bison, bc, xz (the
# source tarball and tinyconfig's XZ-compressed bzImage) and libelf-dev (x86-64
# always builds objtool, for static calls). No BTF is configured, so pahole is
# not needed, and the Go test writes the initramfs, so cpio is not either.
install_missing() {
	local need=()
	[ -f "$tarball" ] || need+=("$srcpkg")
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
	{ command -v gcc && command -v make; } >/dev/null || need+=(build-essential)
	local tool
	for tool in flex bison bc; do
		command -v "$tool" >/dev/null || need+=("$tool")
	done
	command -v xz >/dev/null || need+=(xz-utils)
	[ -f /usr/include/gelf.h ] || need+=(libelf-dev)
	((${#need[@]})) || return 0
	[ "$(id -u)" = 0 ] || die "missing packages: ${need[*]}; install them with apt-get as root"
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
}

# kernel prints the path of a bzImage built from kernel.config, building it
# into the cache unless one with the same key is there.
kernel() {
	local version key out
	version=$(dpkg-query -W -f='${Version}' "$srcpkg")
	key=$({ cat "$fragment"; echo "$srcpkg $version"; } | sha256sum | cut -c1-16)
	out=$cache/$key
	if [ -f "$out/bzImage" ]; then
		log "reusing kernel $out/bzImage"
		echo "$out/bzImage"
		return
	fi
	mkdir -p "$cache"
	# Trees left by builds that were killed (each over a gigabyte); a build
	# still running is younger than this.
	find "$cache" -maxdepth 1 -name 'build.*' -mmin +120 -exec rm -rf {} +
	local work start
	work=$(mktemp -d "$cache/build.XXXXXX")
	# shellcheck disable=SC2064 # expand now: work is local
	trap "rm -rf '$work'" EXIT
	start=$(date +%s)
	log "building kernel $key from $srcpkg $version in $work (a few minutes)"
	tar -xf "$tarball" -C "$work"
	local src=$work/$srcpkg buildlog=$work/build.log
	# A fresh tree is built in place: an O= build refuses a tree built in place.
	if ! {
		make -C "$src" tinyconfig &&
			"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment" &&
			make -C "$src" olddefconfig
	} >"$buildlog" 2>&1; then
		tail -n 30 "$buildlog" >&2
		die "kernel configuration failed"
	fi
	local opt
	while read -r opt; do
		grep -qx "$opt" "$src/.config" || die "kernel config lost $opt (a dependency is missing from kernel.config)"
	done < <(grep '^CONFIG_' "$fragment")
	if ! make -s -C "$src" -j"$(nproc)" bzImage >"$buildlog" 2>&1; then
		tail -n 30 "$buildlog" >&2
		die "kernel build failed"
	fi
	mkdir -p "$work/result"
	cp "$src/arch/x86/boot/bzImage" "$src/.config" "$work/result/"
	mv -T "$work/result" "$out" 2>/dev/null || [ -f "$out/bzImage" ] # a concurrent run may have won
	rm -rf "$work"
	trap - EXIT
	log "kernel built in $(($(date +%s) - start)) s: $out/bzImage"
	echo "$out/bzImage"
}

install_missing
if [ "${1:-}" = kernel ]; then
	kernel
	exit
fi
image=$(kernel)
cd "$root"
FIELDGATE_GPIOVM_KERNEL=$image exec go test -tags gpiovm -count=1 -v -timeout 20m ./test/gpiovm "$@"
