#!/usr/bin/env bash
# Installs what stylize-video needs to build and run, and nothing that is already there:
#   - Debian/Ubuntu packages (a C++ compiler; ffmpeg's development files, clang and pkg-config for
#     the video front-end), through apt, with sudo when not root;
#   - libtorch 2.11.0, as pip's torch==2.11.0 wheel in a virtualenv kept in a cache directory
#     outside the clone ($STYLIZE_CACHE, default ~/.cache/stylize-video) and reused by every clone.
# Prints the virtualenv's path on its last line.
set -euo pipefail

TORCH_VERSION=2.11.0
CACHE=${STYLIZE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stylize-video}
VENV=$CACHE/torch-$TORCH_VERSION
PYTHON=${PYTHON:-python3}

log() { echo "setup: $*" >&2; }

packages=(g++ make pkg-config clang libclang-dev
          libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
          libavfilter-dev libavdevice-dev ffmpeg)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! "$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1; then missing+=(python3-venv); fi
if ((${#missing[@]})); then
  log "installing system packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2 || log "apt-get update failed; trying the install anyway"
  $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  log "installing torch==$TORCH_VERSION (libtorch for tch) into $VENV; about 4.6 GB, once per machine"
  mkdir -p "$CACHE"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" >&2
fi
echo "$VENV"
