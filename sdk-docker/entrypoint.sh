#!/bin/sh
# Builds one meshnode image with an OpenWrt ImageBuilder: adds our signed
# feed (a local directory) and its usign key, runs `make image`, checks the
# image against the device's flash with headroom and leaves the sysupgrade
# and factory images in BIN_DIR. Run by `meshkit image`, in the container
# or (with --imagebuilder) on an unpacked ImageBuilder.
#
# Environment: IB_DIR FEED_DIR FEED_NAME ARCH PROFILE PACKAGES FILES BIN_DIR
# IMAGE_NAME IMAGE_MAX HEADROOM PERSONAL
set -eu

die() {
	echo "entrypoint: $*" >&2
	exit 1
}

for v in IB_DIR FEED_DIR FEED_NAME ARCH PROFILE FILES BIN_DIR IMAGE_NAME IMAGE_MAX HEADROOM; do
	eval "val=\${$v:-}"
	# shellcheck disable=SC2154 # val is set by the eval above
	[ -n "$val" ] || die "$v is not set"
done
PACKAGES=${PACKAGES:-}
PERSONAL=${PERSONAL:-0}

# Personal images hold the node's key: nothing written here is for others.
[ "$PERSONAL" = 1 ] && umask 077

cd "$IB_DIR"
# Branch and snapshot containers ship a setup script instead of the IB.
if [ ! -f Makefile ] && [ -x ./setup.sh ]; then
	./setup.sh
fi
[ -f repositories.conf ] || die "$IB_DIR is not an OpenWrt ImageBuilder (no repositories.conf)"

feed="$FEED_DIR/$ARCH"
{ [ -f "$feed/Packages" ] && [ -f "$feed/Packages.sig" ]; } || die "no signed feed in $feed (run make)"

# The feed's usign key, under its fingerprint, so opkg checks Packages.sig.
found=0
for key in "$FEED_DIR"/keys/*; do
	name=${key##*/}
	case "$name" in
	*.asc) continue ;;
	esac
	[ -f "$key" ] || continue
	mkdir -p keys
	cp "$key" "keys/$name"
	found=1
done
[ "$found" = 1 ] || die "no usign public key in $FEED_DIR/keys"

# One line for our feed, replacing an older one.
sed -i "/^src\/gz $FEED_NAME /d; /^src $FEED_NAME /d" repositories.conf
echo "src/gz $FEED_NAME file://$feed" >> repositories.conf
grep -q '^option check_signature' repositories.conf || echo "option check_signature" >> repositories.conf

mkdir -p "$BIN_DIR"
work="$BIN_DIR/.ib"
rm -rf "$work"
make image PROFILE="$PROFILE" PACKAGES="$PACKAGES" FILES="$FILES" BIN_DIR="$work"

# Keep the sysupgrade and factory images under the image's name; refuse
# one that leaves less than the headroom (as Gluon's check-image-size).
kept=0
for img in "$work"/*; do
	base=${img##*/}
	case "$base" in
	*sysupgrade* | *factory* | *combined*) ;;
	*) continue ;;
	esac
	size=$(wc -c <"$img")
	if [ "$size" -gt $((IMAGE_MAX - HEADROOM)) ]; then
		die "$base is $size bytes: over $IMAGE_MAX minus $HEADROOM headroom"
	fi
	suffix=${base#*"$PROFILE"}
	mv "$img" "$BIN_DIR/$IMAGE_NAME$suffix"
	echo "image $IMAGE_NAME$suffix: $size bytes ($((IMAGE_MAX - size)) left of $IMAGE_MAX)"
	kept=$((kept + 1))
done
rm -rf "$work"
[ "$kept" -gt 0 ] || die "make image wrote no sysupgrade or factory image for $PROFILE"
(cd "$BIN_DIR" && sha256sum "$IMAGE_NAME"* >SHA256SUMS)
