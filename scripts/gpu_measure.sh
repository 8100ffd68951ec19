#!/usr/bin/env bash
# Every GPU check and figure docs/benchmarks.md waits for, for a GPU host that has CUDA,
# NCCL and Python torch but no package access. Three steps:
#
#   scripts/gpu_measure.sh fetch          on a Debian 12 machine with apt: the system
#                                         libraries into .deps/gpu (ignored; carry it)
#   scripts/gpu_measure.sh build          on the GPU host: unpack them, build into build-gpu/
#   scripts/gpu_measure.sh measure OUT    on the GPU host: GPU tests, a bf16 572x572 training
#                                         smoke run and predict, bench train next to PyTorch
#                                         eager and torch.compile; results in OUT
#
# build and measure each fit one 10-minute command. OUT receives two files:
# gpu_results.jsonl (one JSON object per line: each benchmark's output, tagged) and
# gpu_log.txt (versions, test and smoke-run logs).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps=$root/.deps/gpu
build=$root/build-gpu
cd "$root" || exit 1

# Headers and libraries the build needs beyond offline-deps.sh's MPI, HDF5, yaml-cpp and
# Catch2 (runtime libraries the GPU host's base system usually has are left out).
EXTRA_PACKAGES=(libcli11-dev nlohmann-json3-dev libpng-dev libtiff-dev libtiffxx6 zlib1g-dev ninja-build)

fetch() {
  local tool=${OFFLINE_DEPS_TOOL:-$root/../shared/tools/offline-deps.sh}
  [ -f "$tool" ] || { echo "offline-deps.sh not found at $tool (set OFFLINE_DEPS_TOOL)" >&2; return 1; }
  mkdir -p "$deps/debs" && cp "$tool" "$deps/offline-deps.sh" || return 1
  bash "$tool" fetch "$deps/debs" || return 1
  (cd "$deps/debs" && apt-get download "${EXTRA_PACKAGES[@]}") || return 1
  du -sh "$deps"
}

use_deps() {
  [ -f "$deps/offline-deps.sh" ] || { echo "no $deps: run 'scripts/gpu_measure.sh fetch' first and carry .deps/gpu" >&2; return 1; }
  # shellcheck source=/dev/null
  source "$deps/offline-deps.sh" env "$deps/debs" || return 1
  export CPATH=$OPAL_PREFIX/include:$OPAL_PREFIX/include/hdf5/serial:${CPATH:-}
  python=$(command -v python3)
}

build_gpu() {
  use_deps || return 1
  local generator=(-G Ninja)
  command -v ninja >/dev/null || generator=(-G "Unix Makefiles")
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DDPUNET_PYTHON="$python" \
    -DDPUNET_WITH_NCCL=ON || return 1
  cmake --build "$build" -j "$(nproc)"
}

# Runs one benchmark command and appends its JSON, tagged, to the results file.
record() {
  local tag=$1
  shift
  echo "== $tag: $*" >>"$log"
  local json
  if json=$(timeout "${STEP_TIMEOUT:-240}" "$@" 2>>"$log"); then
    "$python" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["tag"]=sys.argv[1]; print(json.dumps(d))' \
      "$tag" <<<"$json" >>"$results" || echo "$tag: output was not JSON" >>"$log"
  else
    echo "$tag: failed or timed out (exit $?)" >>"$log"
  fi
}

measure() {
  [ -n "${1:-}" ] || { echo "usage: gpu_measure.sh measure OUT" >&2; return 2; }
  use_deps || return 1
  local out
  out=$(mkdir -p "$1" && cd "$1" && pwd) || return 1  # absolute: some steps run in bench/
  results=$out/gpu_results.jsonl log=$out/gpu_log.txt
  : >"$results"
  local dpunet=$build/src/dpunet
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    "$dpunet" version
  } >"$log" 2>&1

  echo "== ctest -R gpu" >>"$log"
  (cd "$build" && timeout 240 ctest -R gpu --output-on-failure) >>"$log" 2>&1

  # The trainer itself on the GPU: bf16, channels_last, valid padding, checkpointing,
  # DeviceBatches; then predict from its checkpoint.
  local smoke=$root/runs/gpu_smoke
  rm -rf "$smoke" && mkdir -p "$smoke"
  {
    echo "== train smoke"
    "$dpunet" data synth --out "$smoke/data" --samples 64 --shards 2 --val-samples 8 --size 640 &&
      timeout 240 "$dpunet" train configs/unet572.yaml --set run.dir="$smoke/run" \
        --set data.train="$smoke/data/train-*.h5" --set data.val="$smoke/data/val-*.h5" \
        --set train.steps=40 --set validation.every_steps=40 --set checkpoint.every_steps=40 \
        --set logging.every_steps=10 &&
      echo "== predict smoke" &&
      timeout 120 "$dpunet" predict "$smoke/data/val-00000.h5" --checkpoint "$smoke/run/checkpoints/step-00000040.ckpt" \
        --out "$smoke/predictions" --eval --no-png
  } >>"$log" 2>&1
  [ -f "$smoke/predictions/eval.json" ] && cat "$smoke/predictions/eval.json" >>"$log"

  # Side by side on the same GPU: same padding (the PyTorch reference U-Net pads), bf16,
  # channels_last, fused AdamW, clip 12. H100 SXM dense bf16 peak: 989 TFLOP/s.
  local common=(--size 572 --padding same --precision bf16 --peak-tflops "${PEAK_TFLOPS:-989}")
  record dpunet_b8 "$dpunet" bench train "${common[@]}" --batch 8 --max-batch
  record dpunet_b16 "$dpunet" bench train "${common[@]}" --batch 16 --checkpointing off
  record dpunet_valid_b8 "$dpunet" bench train --size 572 --padding valid --precision bf16 --batch 8 \
    --peak-tflops "${PEAK_TFLOPS:-989}"
  (cd bench && record torch_eager_b8 "$python" pytorch_reference.py --size 572 --batch 8 --precision bf16)
  (cd bench && record torch_eager_b8_ckpt "$python" pytorch_reference.py --size 572 --batch 8 --precision bf16 \
    --checkpointing)
  (cd bench && STEP_TIMEOUT=300 record torch_compile_b8 "$python" pytorch_reference.py --size 572 --batch 8 \
    --precision bf16 --compile)
  record ddp_cuda "$dpunet" bench ddp --device cuda --size 572 --batch 2
  echo "results: $results ($(wc -l <"$results") lines), log: $log"
}

case "${1:-}" in
  fetch) fetch ;;
  build) build_gpu ;;
  measure) measure "${2:-}" ;;
  *)
    echo "usage: scripts/gpu_measure.sh fetch | build | measure OUT" >&2
    exit 2
    ;;
esac
