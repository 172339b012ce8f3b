# Sourced by the package tests: debroot DIR PACKAGES… unpacks a Debian 12
# minbase tree with PACKAGES into DIR. The tree is made with debootstrap once
# per package list and kept as a tarball in FIELDGATE_DEBROOT_CACHE (default
# ~/.cache/fieldgate-debroot), so later runs take seconds and no network.
# DEBIAN_MIRROR overrides the mirror.
debroot() {
	local dir=$1 packages suite=bookworm
	shift
	packages=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
	local cache=${FIELDGATE_DEBROOT_CACHE:-$HOME/.cache/fieldgate-debroot}
	local recipe="--variant=minbase --include=$packages $suite"
	local tarball
	tarball="$cache/$(echo "$recipe" | sha256sum | cut -c1-12).tar"
	if [ ! -f "$tarball" ]; then
		echo "debroot: debootstrap $recipe (cached in $tarball)"
		mkdir -p "$cache"
		local work
		work=$(mktemp -d "$cache/work.XXXXXX")
		# shellcheck disable=SC2086 # the recipe is a list of arguments
		if ! debootstrap $recipe "$work/root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/log" 2>&1; then
			tail -20 "$work/log" >&2
			rm -rf "$work"
			echo "debroot: debootstrap failed" >&2
			return 1
		fi
		tar -C "$work/root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
		rm -rf "$work"
	fi
	mkdir -p "$dir"
	tar -C "$dir" -xf "$tarball"
}
