#!/usr/bin/env bash
# Installs what dpunet needs on a Debian/Ubuntu machine: system libraries from the
# distribution and LibTorch from a pinned torch wheel in a project-local virtualenv.
# Safe to re-run: a second run finds everything present and returns in seconds.
set -euo pipefail

root=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
torch_version=${DPUNET_TORCH_VERSION:-2.11.0}
venv=${DPUNET_VENV:-$root/.venv}

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config python3-venv
  openmpi-bin libopenmpi-dev libyaml-cpp-dev libhdf5-dev catch2
  libcli11-dev nlohmann-json3-dev libpng-dev libtiff-dev clang-format
  procps  # pgrep/pkill: the tests signal the ranks they start (slim images lack it)
)

log() { printf '[setup] %s\n' "$*"; }

install_system_packages() {
  local missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "system packages: all present"
    return
  fi
  command -v apt-get >/dev/null || { echo "setup: apt-get not found; install by hand: ${missing[*]}" >&2; exit 1; }
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: not root and no sudo: install as root: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  log "system packages: installing ${missing[*]}"
  local apt_log
  apt_log=$(mktemp)
  # dpkg is chatty; its output is shown only when something fails. A machine just booted
  # may be installing its own updates: dpkg's lock is waited for, up to 10 minutes.
  # The settings go through env: sudo drops the caller's environment. Without them a
  # debconf or needrestart question would wait, unseen, in the log.
  # apt-get update takes the package lists' lock without waiting for it: tried again
  # while another apt holds it (a boot's apt-daily, cloud-init), for up to 10 minutes.
  # Said on fd 3, the terminal's stderr: the rest goes to the log.
  apt_update() {
    local tries=0 out
    until out=$("${sudo[@]}" apt-get -o Acquire::Retries=3 -o DPkg::Lock::Timeout=600 update -qq 2>&1); do
      echo "$out"
      tries=$((tries + 1))
      grep -q 'Could not get lock' <<<"$out" && [ "$tries" -lt 60 ] || return 1
      echo "setup: the package lists are locked by another apt (a boot's updates?); trying again in 10 s" >&3
      sleep "${DPUNET_APT_RETRY_S:-10}"
    done
    echo "$out"
  }
  if ! { apt_update &&
         "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a \
           apt-get -o Acquire::Retries=3 -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
             "${missing[@]}"; } 3>&2 >"$apt_log" 2>&1 </dev/null; then
    cat "$apt_log" >&2
    echo "setup: apt-get failed installing: ${missing[*]}" >&2
    exit 1
  fi
  rm -f "$apt_log"
}

# A LibTorch the user already points CMake at wins over the wheel.
user_libtorch() {
  local d prefixes=()
  IFS=: read -r -a prefixes <<<"${CMAKE_PREFIX_PATH:-}"
  for d in ${Torch_DIR:+"$Torch_DIR"} "${prefixes[@]}"; do
    [ -f "$d/TorchConfig.cmake" ] || [ -f "$d/share/cmake/Torch/TorchConfig.cmake" ] && return 0
  done
  return 1
}

install_torch() {
  if user_libtorch; then
    log "LibTorch: using the one given by Torch_DIR/CMAKE_PREFIX_PATH"
    return
  fi
  if [ -x "$venv/bin/python" ] &&
     [ "$("$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)" = "$torch_version" ]; then
    log "LibTorch: torch $torch_version present in $venv"
    # Only tests use them (they say "skipped" without): an offline re-run still succeeds.
    "$venv/bin/python" -c 'import safetensors, tensorboard' 2>/dev/null ||
      "$venv/bin/python" -m pip install -q safetensors tensorboard ||
      log "safetensors/tensorboard not installed: the tests that read with them will be skipped"
    return
  fi
  log "LibTorch: installing torch==$torch_version into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  # numpy only silences torch's import warning; safetensors and tensorboard serve the
  # interop tests (weights in PyTorch, event files in TensorBoard's own reader).
  "$venv/bin/python" -m pip install -q "torch==$torch_version" numpy safetensors tensorboard
}

# The tree is laid out by clang-format 14 (tests/check_format.sh); newer distributions
# ship a later one, so 14 comes from a wheel into the virtualenv there.
install_clang_format() {
  local clang_format_version=14.0.6
  if command -v clang-format-14 >/dev/null ||
     clang-format --version 2>/dev/null | grep -q 'version 14\.' ||
     "$venv/bin/clang-format" --version 2>/dev/null | grep -q "version $clang_format_version"; then
    log "clang-format 14: present"
    return
  fi
  log "clang-format 14: installing clang-format==$clang_format_version into $venv"
  # Only the format test uses it (it says "skipped" without): an offline re-run still succeeds.
  { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } &&
    "$venv/bin/python" -m pip install -q "clang-format==$clang_format_version" ||
    log "clang-format 14 not installed: the format test will be skipped"
}

install_system_packages
install_torch
install_clang_format
log "done"
