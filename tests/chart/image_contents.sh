#!/bin/sh
# The files of the runtime image, computed on this machine: the binary (stripped, as the
# Dockerfile strips it), every shared library `ldd` lists for it, the dynamic loader, and
# /etc/passwd + /etc/group for the non-root user 65532. The Dockerfile runs this same script
# with --rootfs to assemble its FROM-scratch stage, so the list below is what the image holds.
#
# usage: image_contents.sh [--rootfs DIR] [--with-lib SONAME]... [--no-strip] BINARY
#   (default)          print each file with its size, the total, and the size of the layer
#                      as a tar and as a gzip-compressed tar (what a registry stores)
#   --rootfs DIR       copy the files into DIR instead (used by the Dockerfile)
#   --with-lib SONAME  also take SONAME and its own libraries, for a projection of a binary
#                      that will link it (e.g. libgnutls.so.30) but does not yet
#   --no-strip         measure the binary as it is
#
# "computed, not built": no container engine is needed. The figures exclude the image's
# metadata (config JSON, manifest: about 1-2 KB).
set -eu

rootfs=""
strip_binary=1
extra_libs=""
while [ $# -gt 1 ]; do
	case "$1" in
	--rootfs) rootfs=$2; shift 2 ;;
	--with-lib) extra_libs="$extra_libs $2"; shift 2 ;;
	--no-strip) strip_binary=0; shift ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
binary=$1
[ -x "$binary" ] || { echo "image_contents.sh: not an executable: $binary" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# The absolute paths ldd prints for FILE (libraries and the loader; not the vDSO).
needed() {
	out=$(ldd "$1" 2>&1) || { echo "image_contents.sh: ldd $1: $out" >&2; exit 1; }
	if echo "$out" | grep -q 'not found'; then
		echo "image_contents.sh: unresolved libraries for $1:" >&2
		echo "$out" | grep 'not found' >&2
		exit 1
	fi
	echo "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3; next }
	                   $1 ~ /^\// { print $1 }'
}

# A library given by soname, looked up where the loader looks.
find_lib() {
	for dir in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib/aarch64-linux-gnu \
		/usr/lib/aarch64-linux-gnu /lib64 /usr/lib64 /lib /usr/lib; do
		if [ -e "$dir/$1" ]; then
			echo "$dir/$1"
			return 0
		fi
	done
	echo "image_contents.sh: library $1 not found" >&2
	exit 1
}

{
	needed "$binary"
	for soname in $extra_libs; do
		lib=$(find_lib "$soname")
		echo "$lib"
		needed "$lib"
	done
} | sort -u >"$work/libs"

# The tree: the binary at /pod-identity-webhook, each library at the path ldd printed
# (symlinks resolved into regular files), the user database.
tree="$work/rootfs"
mkdir -p "$tree/etc"
if [ "$strip_binary" -eq 1 ]; then
	strip --strip-unneeded -o "$tree/pod-identity-webhook" "$binary"
else
	cp "$binary" "$tree/pod-identity-webhook"
fi
chmod 0555 "$tree/pod-identity-webhook"
while read -r lib; do
	mkdir -p "$tree$(dirname "$lib")"
	cp -L "$lib" "$tree$lib"
	chmod 0444 "$tree$lib"
done <"$work/libs"
# The dynamic loader must stay executable.
find "$tree" -name 'ld-linux*' -exec chmod 0555 {} +
echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >"$tree/etc/passwd"
echo 'nonroot:x:65532:' >"$tree/etc/group"
chmod 0444 "$tree/etc/passwd" "$tree/etc/group"

if [ -n "$rootfs" ]; then
	mkdir -p "$rootfs"
	cp -a "$tree/." "$rootfs/"
	exit 0
fi

total=0
echo "files of the runtime image (bytes):"
for f in $(cd "$tree" && find . -type f | sed 's|^\.||' | sort); do
	size=$(stat -c %s "$tree$f")
	total=$((total + size))
	printf '%10d  %s\n' "$size" "$f"
done
tar_size=$(tar -C "$tree" --numeric-owner --owner=0 --group=0 -cf - . | wc -c)
gz_size=$(tar -C "$tree" --numeric-owner --owner=0 --group=0 -cf - . | gzip -6 -n | wc -c)
printf '%10d  total (%s files)\n' "$total" "$(find "$tree" -type f | wc -l)"
printf '%10d  layer as tar\n' "$tar_size"
printf '%10d  layer as tar.gz (registry size)\n' "$gz_size"
awk -v t="$total" -v g="$gz_size" 'BEGIN { printf "image: %.1f MiB uncompressed, %.1f MiB compressed\n", t / 1048576, g / 1048576 }'
