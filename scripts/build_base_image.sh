#!/bin/sh
# A Debian bookworm base image made here, without an image registry: debootstrap from Debian's
# package mirror, then `docker import`. Bookworm's python3 is 3.11, as the Dockerfile needs.
#   sudo scripts/build_base_image.sh [tag] [mirror]
#   docker build --build-arg BASE_IMAGE=selah-base:bookworm -t selah .
# Needs root, debootstrap and docker (Debian: apt-get install debootstrap docker.io).
# EXTRA_CA_DIR: a folder of extra CA certificates (*.crt) the image should trust, for a network
# whose egress proxy signs TLS with its own CA (this machine's: /usr/local/share/ca-certificates).
set -eu
TAG=${1:-selah-base:bookworm}
MIRROR=${2:-http://deb.debian.org/debian}
ROOTFS=$(mktemp -d /tmp/selah-rootfs-XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR"
if [ -n "${EXTRA_CA_DIR:-}" ]; then
    cp "$EXTRA_CA_DIR"/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    chroot "$ROOTFS" update-ca-certificates
fi
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$TAG"
echo "built $TAG"
