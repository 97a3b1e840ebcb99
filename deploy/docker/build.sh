#!/usr/bin/env bash
# Builds the kvstore image without pulling anything: release binaries and
# their shared libraries go into a root filesystem that a FROM scratch
# Dockerfile copies in.
#
#   deploy/docker/build.sh [image tag, default kvstore:dev]
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${1:-kvstore:dev}
# Where cargo puts the binaries: honour CARGO_TARGET_DIR as cargo does.
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --bins -p pd -p storenode
ROOT=deploy/docker/rootfs
rm -rf "$ROOT"
mkdir -p "$ROOT/bin" "$ROOT/tmp" "$ROOT/data"
for b in pd-server pdctl storenode kvbench; do
  cp "$TARGET/release/$b" "$ROOT/bin/"
done
# The dynamic loader and libraries the binaries link, at the same paths.
for lib in $(ldd "$TARGET/release/pd-server" "$TARGET/release/storenode" | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
docker build -t "$TAG" -f deploy/docker/Dockerfile deploy/docker
echo "built $TAG"
