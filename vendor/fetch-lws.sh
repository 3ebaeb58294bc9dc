#!/usr/bin/env bash
# Obtains libwebsockets 4.3.5 as Debian ships it (trixie, newest security
# revision): the upstream orig tarball plus Debian's debian.tar.xz, whose
# debian/patches/series is applied in order, then our own patches
# (vendor/patches/*.patch, in name order; see vendor/README.md). Both tarballs
# are checked against the SHA-256 sums pinned in vendor/SHA256SUMS before
# anything is unpacked.
#
# Usage: vendor/fetch-lws.sh [DEST]   (default: vendor/libwebsockets-4.3.5)
#
# It leaves the machine's apt setup alone: apt runs with a private sources list
# and private state/cache folders under vendor/.cache (apt's -o options); the
# mirror is the one the machine's own apt sources already use. lws-sys's
# build.rs runs this script when it finds no source tree; LWS_SOURCE_DIR=/path
# skips it altogether.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
upstream=4.3.5
debian_rev=4.3.5-1+deb13u3 # newest trixie security revision; bump with SHA256SUMS
dest=${1:-$here/libwebsockets-$upstream}
cache=$here/.cache
orig=libwebsockets_$upstream.orig.tar.gz
debtar=libwebsockets_$debian_rev.debian.tar.xz
# Our patches, applied after Debian's. The stamp names each with its
# SHA-256, so a tree made before a patch was added or changed is re-made.
patches=("$here"/patches/*.patch)
[ -e "${patches[0]}" ] || patches=()
stamp_text="libwebsockets $upstream + debian $debian_rev"
for p in "${patches[@]}"; do
	stamp_text+=" + lws-rs $(basename "$p") $(sha256sum "$p" | cut -d' ' -f1)"
done

say() { printf 'fetch-lws: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	say "Either make the Debian source package reachable (apt-get, patch, xz on PATH),"
	say "or point LWS_SOURCE_DIR at an unpacked libwebsockets 4.3.5 tree."
	exit 1
}

for tool in apt-get apt-cache sha256sum tar xz patch flock; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

mkdir -p "$cache/dl"
exec 9>"$cache/lock"
flock 9 # concurrent builds (test + clippy) wait for one fetch

if [ -f "$dest/.lws-rs-source" ] && [ "$(cat "$dest/.lws-rs-source")" = "$stamp_text" ]; then
	say "source already present in $dest"
	exit 0
fi

verified() { # file -> 0 when present and matching its pinned sum
	local f=$1 want
	want=$(awk -v f="$f" '$2 == f { print $1 }' "$here/SHA256SUMS")
	[ -n "$want" ] || die "no pinned sum for $f in vendor/SHA256SUMS"
	[ -f "$cache/dl/$f" ] && [ "$(sha256sum "$cache/dl/$f" | cut -d' ' -f1)" = "$want" ]
}

# The machine's own Debian mirrors, read from its apt configuration.
mirror_of() { # suffix ("debian" or "debian-security") -> first matching URI
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE '(https?|file)://[^ ]+/'"$1"'/?( |$)' | head -n1 | tr -d ' ' | sed 's:/$::' || true
}

# One archive's source index in its own private apt dirs. Each archive is
# asked on its own: when a point release copies a security revision into the
# main archive's index, apt prefers the main pool, which may still lack its
# files (404), while the security pool has the debian tarball but never the
# orig tarball. Asking each archive alone gets each file from where it is.
fetch_from() { # name, "deb-src" line
	local name=$1 line=$2 dir=$cache/apt/$1 versions v
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
	echo "$line" >"$dir/sources.list"
	local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
		-o Dir::State::status=/dev/null -o Debug::NoLocking=1)
	[ "$(id -u)" != 0 ] || opts+=(-o APT::Sandbox::User=root)
	say "apt-get update ($name, private lists: $dir)"
	apt-get "${opts[@]}" -qq update >&2 || {
		say "apt-get update failed for $name"
		return 0
	}
	versions=$(apt-cache "${opts[@]}" showsrc libwebsockets 2>/dev/null | awk '/^Version: 4\.3\.5-/ { print $2 }' | sort -u)
	# apt exits non-zero when any one file answers 404, so the files are what
	# we check; every 4.3.5 revision may carry the orig tarball.
	for v in $(printf "%s\n" "$debian_rev" $versions | awk '!seen[$0]++'); do
		verified "$orig" && verified "$debtar" && return 0
		say "apt-get source --download-only libwebsockets=$v ($name)"
		(cd "$cache/dl" && apt-get "${opts[@]}" -qq source --download-only "libwebsockets=$v" >&2 2>/dev/null) || true
	done
}

fetch_with_apt() {
	local main security keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	main=${LWS_DEBIAN_MIRROR:-$(mirror_of debian)}
	security=${LWS_DEBIAN_SECURITY_MIRROR:-$(mirror_of debian-security)}
	[ -n "$main" ] || die "no Debian mirror found in /etc/apt (set LWS_DEBIAN_MIRROR)"
	[ -f "$keyring" ] || die "$keyring is missing (package debian-archive-keyring)"
	[ -z "$security" ] || fetch_from security "deb-src [signed-by=$keyring] $security trixie-security main"
	fetch_from main "deb-src [signed-by=$keyring] $main trixie main"
}

if ! { verified "$orig" && verified "$debtar"; }; then
	fetch_with_apt
fi
verified "$orig" || die "$orig missing or its SHA-256 differs from vendor/SHA256SUMS"
verified "$debtar" || die "$debtar missing or its SHA-256 differs from vendor/SHA256SUMS"
say "both tarballs match their pinned SHA-256"

work=$(mktemp -d "$cache/unpack.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$cache/dl/$orig" -C "$work"
tree=$work/libwebsockets-$upstream
[ -d "$tree" ] || die "$orig did not unpack to libwebsockets-$upstream/"
tar -xJf "$cache/dl/$debtar" -C "$work"
while read -r p _; do
	case $p in '' | '#'*) continue ;; esac
	say "applying debian/patches/$p"
	patch -d "$tree" -p1 --batch --forward --quiet <"$work/debian/patches/$p" || die "patch $p failed"
done <"$work/debian/patches/series"
for p in "${patches[@]}"; do
	say "applying vendor/patches/$(basename "$p")"
	if ! patch -d "$tree" -p1 --batch --forward --quiet <"$p"; then
		say "error: vendor/patches/$(basename "$p") does not apply to $stamp_text"
		exit 1
	fi
done
echo "$stamp_text" >"$tree/.lws-rs-source"

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tree" "$dest"
say "patched source ready in $dest"
