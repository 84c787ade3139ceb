#!/usr/bin/env bash
# Builds the base image `slackbot-base:bookworm` from a debootstrap rootfs, for machines that
# cannot pull from a registry. Idempotent: does nothing when the image exists.
# The package list covers what the sandbox image installs, so its apt step only configures.
set -euo pipefail

IMAGE=${SLACKBOT_BASE_IMAGE:-slackbot-base:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=(
  bash ca-certificates coreutils curl git jq less patch procps iproute2 ripgrep
  python3 python3-pip python3-venv build-essential
)

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base-image: $IMAGE already present"
  exit 0
fi

rootfs=$(mktemp -d /var/tmp/slackbot-base.XXXXXX)
cleanup() {
  # debootstrap may leave /proc or /sys mounted when it fails; never rm -rf through a mount.
  findmnt -rno TARGET | grep -F "$rootfs/" | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT

echo "base-image: debootstrap $SUITE into $rootfs"
include=$(IFS=,; echo "${PACKAGES[*]}")
debootstrap --variant=minbase --include="$include" "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
  tail -n 40 "$rootfs.log" >&2
  exit 1
}
rm -f "$rootfs.log"

# apt inside later builds needs sources; keep the image small and free of host leftovers.
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SOURCES
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"

echo "base-image: importing as $IMAGE"
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$IMAGE" >/dev/null
echo "base-image: $IMAGE ready"
