#!/usr/bin/env bash
# Build the pneumo image: deploy/build-image.sh serve|train  (prints the image's name last)
#
# With Docker when a daemon answers; else with buildah (vfs storage, chroot isolation: no daemon, no privileges beyond
# root). When the base image (debian:bookworm-slim) cannot be pulled, the same Debian release is bootstrapped from
# Debian's packages with debootstrap and tagged as that base. pip inside the build trusts the CA bundle in
# $PNEUMO_BUILD_CA (default: this host's, /etc/ssl/certs/ca-certificates.crt), mounted for the build only.
set -euo pipefail
target=${1:-}
if [[ $target != serve && $target != train ]]; then
  echo "usage: deploy/build-image.sh serve|train" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
base=debian:bookworm-slim
ca=${PNEUMO_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  image=pneumo:$target
  if [[ -f $ca ]]; then
    DOCKER_BUILDKIT=1 docker build --target "$target" --secret id=pip_cert,src="$ca" -t "$image" . >&2
  else
    docker build --target "$target" -t "$image" . >&2
  fi
  echo "$image"
  exit 0
fi

if ! command -v buildah >/dev/null 2>&1; then
  echo "Neither a Docker daemon nor buildah: install one (apt-get install buildah debootstrap)." >&2
  exit 1
fi
bah=(buildah --storage-driver vfs)
image=localhost/pneumo:$target

if ! "${bah[@]}" inspect --type image "$base" >/dev/null 2>&1 && ! "${bah[@]}" pull -q "docker.io/library/$base" >/dev/null 2>&1; then
  echo "Cannot pull $base: bootstrapping Debian bookworm locally (debootstrap, about a minute)." >&2
  command -v debootstrap >/dev/null 2>&1 || { echo "Install debootstrap (apt-get install debootstrap)." >&2; exit 1; }
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)
  rootfs=$(mktemp -d /tmp/pneumo-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
  # Slim as Debian's own slim image: no documentation, manuals or translations, now or from later installs.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
SLIM
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/*
  container=$("${bah[@]}" from scratch)
  mount=$("${bah[@]}" mount "$container")
  cp -a "$rootfs"/. "$mount"/
  "${bah[@]}" umount "$container" >/dev/null
  "${bah[@]}" commit -q "$container" "localhost/$base" >/dev/null
  "${bah[@]}" rm "$container" >/dev/null
  "${bah[@]}" tag "localhost/$base" "$base" 2>/dev/null || true
fi

build_ca=()
if [[ -f $ca ]]; then
  build_ca=(--secret id=pip_cert,src="$ca")
fi
"${bah[@]}" bud --isolation chroot --format docker --pull-never --layers=false --target "$target" \
  "${build_ca[@]}" -t "$image" . >&2
echo "$image"
