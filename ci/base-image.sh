#!/usr/bin/env bash
# Builds the base image `slackbot-base:bookworm` from a debootstrap rootfs, for machines that
# cannot pull from a registry. Idempotent: does nothing when the image exists.
# The package list covers what the sandbox image installs, so its apt step only configures.
set -euo pipefail

IMAGE=${SLACKBOT_BASE_IMAGE:-slackbot-base:bookworm}
SUITE=bookworm

apt_uris() {  # every URI this machine's apt sources name: one-line and deb822 formats
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
}
# The machine's own Debian mirror (no host name is written here); DEBIAN_MIRROR overrides it.
MIRROR=${DEBIAN_MIRROR:-$(apt_uris | grep -v -- '-security' | head -n 1 || true)}
SECURITY=${DEBIAN_SECURITY_MIRROR:-$(apt_uris | grep -m1 -- '-security/\?$' || true)}
if [[ -z $MIRROR ]]; then
  echo "base-image: no Debian mirror in this machine's apt sources; set DEBIAN_MIRROR" >&2
  exit 1
fi
MIRROR=${MIRROR%/}
SECURITY=${SECURITY%/}
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
{
  echo "deb $MIRROR $SUITE main"
  echo "deb $MIRROR $SUITE-updates main"
  [[ -n $SECURITY ]] && echo "deb $SECURITY $SUITE-security main"
} >"$rootfs/etc/apt/sources.list"
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
