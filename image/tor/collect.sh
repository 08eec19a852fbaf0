#!/usr/bin/env bash
# collect.sh: gather Debian's tor, the shared libraries it needs and their
# dynamic loader into one folder, for the gokrazy image (which has no libc).
#
# On the box, netconf/onion starts tor through the loader, with no shell:
#
#   /usr/lib/tor/ld-linux-aarch64.so.1 --library-path /usr/lib/tor/lib /usr/lib/tor/tor
#
# (onion.BundleCommand finds this layout in /usr/lib/tor by itself.)
#
# Usage:
#   collect.sh [-a ARCH] [-s SUITE] [-m MIRROR] [-t] OUTDIR
#       Download tor and its library packages for the Debian architecture
#       ARCH (arm64, amd64, …; default: this machine's) from SUITE (default:
#       this machine's codename, e.g. bookworm), and unpack what tor needs.
#   collect.sh --host [-t] OUTDIR
#       Copy this machine's installed tor and the libraries `ldd` lists
#       (no download; used by netconf/onion's tests).
#
#   -t  also write OUTDIR_<goarch>.tar, which gokrazy picks by target
#       architecture. In config.json, one entry then serves both images:
#         "PackageConfig": { "github.com/hearthchat/hearth/cmd/netconf": {
#             "ExtraFilePaths": { "/usr/lib/tor": "out/tor" } } }
#       with out/tor_arm64.tar and out/tor_amd64.tar made by (make tor-bundle)
#         collect.sh -a arm64 -t out/tor && collect.sh -a amd64 -t out/tor
#
# OUTDIR gets:
#   tor                    the tor program
#   ld-linux-*.so.*        the dynamic loader tor asks for
#   lib/*.so.*             every shared library tor needs, by soname
#   copyright/<package>    the Debian copyright file of each package used
#   VERSIONS               package versions (or the host's tor --version)
#
# Needs: bash, apt-get, apt-cache, dpkg-deb, readelf (binutils), tar, and
# network access to the Debian mirror (download mode only). The download
# mode uses its own apt state in a temporary folder: it does NOT run
# `dpkg --add-architecture` or change this machine's apt configuration,
# and needs no root.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }

arch="" suite="" mirror="http://deb.debian.org/debian" host=0 tarball=0
while [ $# -gt 0 ]; do
	case "$1" in
	-a) arch="$2"; shift 2 ;;
	-s) suite="$2"; shift 2 ;;
	-m) mirror="$2"; shift 2 ;;
	-t) tarball=1; shift ;;
	--host) host=1; shift ;;
	-h|--help) usage ;;
	-*) echo "collect.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || usage
out="$1"

need() { command -v "$1" >/dev/null || { echo "collect.sh: needs $1 ($2)" >&2; exit 1; }; }
need readelf binutils

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

rm -rf "$out"
mkdir -p "$out/lib" "$out/copyright"

# interp prints the ELF interpreter a program asks for.
interp() { readelf -lW "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p'; }
# needed prints the sonames an ELF file links against.
needed() { readelf -dW "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

if [ "$host" = 1 ]; then
	need ldd libc-bin
	tor="$(command -v tor || true)"
	for p in /usr/sbin/tor /usr/bin/tor; do [ -n "$tor" ] || { [ -x "$p" ] && tor="$p"; } || true; done
	[ -n "$tor" ] || { echo "collect.sh: tor is not installed (apt-get install tor)" >&2; exit 1; }
	cp -L "$tor" "$out/tor"
	loader="$(interp "$tor")"
	cp -L "$loader" "$out/$(basename "$loader")"
	# ldd resolves the whole tree; keep the soname as the file name.
	srcs=("$tor")
	while read -r soname path; do
		cp -L "$path" "$out/lib/$soname"
		srcs+=("$path")
	done < <(ldd "$tor" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
	# Copyright files of the packages the files come from (dpkg knows the
	# path before or after /usr-merge, so ask for both).
	for p in "${srcs[@]}"; do
		pkg="$( { dpkg -S "$p" || dpkg -S "$(readlink -f "$p")"; } 2>/dev/null | head -n1 | cut -d: -f1 || true)"
		if [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ]; then
			cp "/usr/share/doc/$pkg/copyright" "$out/copyright/$pkg"
		fi
	done
	"$out/$(basename "$loader")" --library-path "$out/lib" "$out/tor" --version | head -n1 >"$out/VERSIONS"
	arch="$(dpkg --print-architecture)"
else
	need apt-get apt
	need dpkg-deb dpkg
	[ -n "$arch" ] || arch="$(dpkg --print-architecture)"
	if [ -z "$suite" ]; then
		suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
		[ -n "$suite" ] || { echo "collect.sh: cannot tell the Debian suite; pass -s" >&2; exit 1; }
	fi
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -f "$keyring" ] || { echo "collect.sh: needs $keyring (debian-archive-keyring)" >&2; exit 1; }

	# A private apt: its own sources, lists and cache, for ARCH only.
	mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/sources.list.d" "$work/apt/preferences.d"
	: >"$work/apt/status"
	security="${mirror%/debian}/debian-security"
	{
		echo "deb [arch=$arch signed-by=$keyring] $mirror $suite main"
		echo "deb [arch=$arch signed-by=$keyring] $mirror $suite-updates main"
		echo "deb [arch=$arch signed-by=$keyring] $security $suite-security main"
	} >"$work/apt/sources.list"
	cat >"$work/apt/apt.conf" <<-EOF
		APT::Architecture "$arch";
		APT::Architectures { "$arch"; };
		Dir::State "$work/apt";
		Dir::State::Lists "$work/apt/lists";
		Dir::State::status "$work/apt/status";
		Dir::Cache "$work/apt/cache";
		Dir::Etc::SourceList "$work/apt/sources.list";
		Dir::Etc::SourceParts "$work/apt/sources.list.d";
		Dir::Etc::Preferences "$work/apt/preferences";
		Dir::Etc::PreferencesParts "$work/apt/preferences.d";
		Acquire::Languages "none";
	EOF
	# As root, apt would drop to the _apt user, which cannot write our
	# private (0700) folders.
	[ "$(id -u)" != 0 ] || echo 'APT::Sandbox::User "root";' >>"$work/apt/apt.conf"
	export APT_CONFIG="$work/apt/apt.conf"

	echo "collect.sh: reading the $suite package lists for $arch" >&2
	apt-get -q update >&2
	# tor and the library packages it depends on, directly or not (first
	# alternatives only: libelogind0 must not stand in for libsystemd0).
	# tor's other dependencies (adduser, lsb-base, …) are not needed to run
	# it. The ELF walk below then takes only the files tor really loads.
	deps() {
		apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
			--no-replaces --no-enhances "$1" |
			sed -n 's/^  \(Pre\)\{0,1\}Depends: \([^<][^ ]*\)$/\2/p' | sed 's/:any$//'
	}
	pkgs=" tor " queue=(tor)
	while [ ${#queue[@]} -gt 0 ]; do
		p="${queue[0]}"; queue=("${queue[@]:1}")
		for d in $(deps "$p"); do
			case "$d" in lib*|zlib*) ;; *) continue ;; esac
			case "$pkgs" in *" $d "*) continue ;; esac
			pkgs="$pkgs$d "
			queue+=("$d")
		done
	done
	mkdir -p "$work/debs" "$work/pkgs"
	(cd "$work/debs" && apt-get -q download $pkgs >&2)
	declare -A version
	for deb in "$work"/debs/*.deb; do
		p="$(dpkg-deb -f "$deb" Package)"
		dpkg-deb -x "$deb" "$work/pkgs/$p"
		version[$p]="$(dpkg-deb -f "$deb" Version)"
	done

	# resolve prints the real file behind path inside one unpacked package
	# ($2), following symlinks (absolute ones are relative to the package,
	# not to this machine).
	resolve() {
		local p="$1" pkgroot="$2" i t
		for i in $(seq 20); do
			[ -L "$p" ] || { [ -f "$p" ] && echo "$p"; return; }
			t="$(readlink "$p")"
			case "$t" in
			/*) p="$pkgroot$t" ;;
			*) p="$(dirname "$p")/$t" ;;
			esac
		done
	}
	# findlib prints "package file" for a soname in the unpacked packages.
	findlib() {
		local c f pkg
		while read -r c; do
			pkg="${c#"$work/pkgs/"}"; pkg="${pkg%%/*}"
			f="$(resolve "$c" "$work/pkgs/$pkg")"
			[ -z "$f" ] || { echo "$pkg $f"; return; }
		done < <(find "$work"/pkgs/*/lib "$work"/pkgs/*/usr/lib -name "$1" \( -type f -o -type l \) 2>/dev/null)
	}
	used=" tor "

	tor="$(resolve "$work/pkgs/tor/usr/bin/tor" "$work/pkgs/tor")"
	[ -n "$tor" ] || tor="$(resolve "$work/pkgs/tor/usr/sbin/tor" "$work/pkgs/tor")"
	[ -n "$tor" ] || { echo "collect.sh: no tor program in the tor package" >&2; exit 1; }
	cp "$tor" "$out/tor"
	loader="$(interp "$tor")"
	read -r pkg lf < <(findlib "$(basename "$loader")") || true
	[ -n "${lf:-}" ] || { echo "collect.sh: loader $loader not found in the packages" >&2; exit 1; }
	cp "$lf" "$out/$(basename "$loader")"
	used="$used$pkg "

	# Walk the NEEDED entries from tor down, copying each library once.
	queue=("$out/tor")
	while [ ${#queue[@]} -gt 0 ]; do
		f="${queue[0]}"; queue=("${queue[@]:1}")
		for so in $(needed "$f"); do
			[ "$so" != "$(basename "$loader")" ] || continue
			[ ! -e "$out/lib/$so" ] || continue
			pkg="" lib=""
			read -r pkg lib < <(findlib "$so") || true
			[ -n "$lib" ] || { echo "collect.sh: $so (needed by $(basename "$f")) is in none of:$pkgs" >&2; exit 1; }
			cp "$lib" "$out/lib/$so"
			case "$used" in *" $pkg "*) ;; *) used="$used$pkg " ;; esac
			queue+=("$out/lib/$so")
		done
	done
	: >"$out/VERSIONS"
	for p in $used; do
		echo "$p=${version[$p]}" >>"$out/VERSIONS"
		c="$work/pkgs/$p/usr/share/doc/$p/copyright"
		[ ! -f "$c" ] || cp "$c" "$out/copyright/$p"
	done
fi

chmod 0755 "$out/tor" "$out"/ld-linux*
chmod 0644 "$out"/lib/*

if [ "$tarball" = 1 ]; then
	case "$arch" in
	armhf|armel) goarch=arm ;;
	i386) goarch=386 ;;
	*) goarch="$arch" ;;
	esac
	# Member names without "./": gokrazy's packer takes them as they are.
	tarpath="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")_$goarch.tar"
	(cd "$out" && tar --owner=0 --group=0 --numeric-owner --sort=name -cf "$tarpath" -- *)
	echo "collect.sh: wrote $tarpath" >&2
fi
echo "collect.sh: tor for $arch in $out: $(ls "$out/lib" | wc -l) libraries, loader $(basename "$out"/ld-linux*)" >&2
