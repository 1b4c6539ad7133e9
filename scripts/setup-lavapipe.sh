#!/bin/sh
# Software WebGPU for machines without a GPU: fetch Mesa >= 25's lavapipe (a CPU Vulkan driver) from
# Debian's bookworm-backports into DIR, without touching the system's apt configuration or its Mesa.
# Dawn (the `webgpu` npm package) rejects bookworm's own Mesa 22.3 lavapipe; Mesa 25 gives an adapter
# with shader-f16, subgroups and timestamp-query (copied from the team's shared tools).
# Usage: eval "$(sh setup-lavapipe.sh DIR)"   -> sets VK_ICD_FILENAMES for this shell.
# Idempotent: a second run with the same DIR only prints the export line.
set -eu
DEST=$(realpath -m "${1:-.lavapipe}")
ICD="$DEST/lvp_icd.json"
if [ ! -f "$ICD" ]; then
  mkdir -p "$DEST/apt/lists/partial" "$DEST/apt/cache/archives/partial" "$DEST/apt/src"
  # bookworm's mesa-vulkan-drivers brings the runtime libraries the newer driver links against.
  apt-get install -y -q --no-install-recommends mesa-vulkan-drivers >/dev/null
  # The backports suite on the same mirror the system already uses.
  URI=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$URI" > "$DEST/apt/src/bp.sources"
  A="-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$DEST/apt/src -o Dir::State::Lists=$DEST/apt/lists -o Dir::Cache=$DEST/apt/cache -o APT::Sandbox::User=root"
  apt-get $A update >/dev/null
  (cd "$DEST" && apt-get $A download mesa-vulkan-drivers/bookworm-backports >/dev/null)
  dpkg-deb -x "$DEST"/mesa-vulkan-drivers_*.deb "$DEST/root"
  printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$DEST/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" > "$ICD"
fi
echo "export VK_ICD_FILENAMES=$ICD"
