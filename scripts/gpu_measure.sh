#!/usr/bin/env bash
# Every GPU check and figure docs/benchmarks.md waits for, for a GPU host that has CUDA,
# NCCL and Python torch but no package access.
#
#   scripts/gpu_measure.sh fetch          on a Debian 12 machine with apt: the system
#                                         libraries into .deps/gpu (ignored; carry it); when
#                                         build/ holds a CUDA build, also the shared libraries
#                                         its binaries load, so they can run there unbuilt
#   scripts/gpu_measure.sh build          on the GPU host: unpack them, build into build-gpu/
#                                         (optional: without it, measure runs build/'s
#                                         binaries, carried along)
#   scripts/gpu_measure.sh measure OUT [STEP...]
#                                         on the GPU host: the steps named (default: tests
#                                         smoke pair variants capacity ddp), results in
#                                         OUT. Steps:
#     tests          the [gpu] tests
#     smoke          bf16 572x572 training, resume, predict
#     pair           bench train next to PyTorch eager and torch.compile
#     compile        the plain step next to torch.compile, then eager
#     variants       dpunet's kernels off one at a time, every block recomputed
#     capacity       the checkpointing target: the largest batch with and without it
#     capacity_more  the other policies' largest batches, larger batches' MFU
#     capacity_expandable  capacity under the allocator's expandable segments
#     split          min_memory with its split skip convolutions and without, batch 8,
#                    both paddings, and where its step's memory peaks
#     profile        kernel time per step next to PyTorch's
#     ddp            bench ddp on CUDA
#     cpu_ddp        bench ddp on CPU ranks with spare cores
#     saves          step time with a checkpoint every 5 steps
#     fp16           40 training steps in fp16 and in bf16
#     loader         the plain step fed by the training loader: its data wait
#
# OUT receives gpu_results.jsonl (one JSON object per line: each benchmark's output,
# tagged; bench/gpu_targets.py reads the issue's targets off it, also at the end of each
# call) and gpu_log.txt (versions, test and smoke-run logs); the profile step adds
# kernels.txt and the traces, trace_*.json.gz; the split step memory_peaks.txt and its
# traces, trace_min_memory*.json.gz. It exits 1 when a part failed (a test, a run, a
# benchmark that failed or timed out), listing them at the end; parts skipped for lack of
# time are not failures.
#
# A device call is at most 10 minutes: every benchmark's timeout is cut to what is left
# of DEADLINE_S (default 560) seconds from the start, a benchmark too long for what is
# left is skipped (the largest-batch searches need 240 s, torch.compile 120 s), and the
# traces' analysis is skipped in the last 30 s, so the script ends on its own with its
# results written; give DEADLINE_S at most the call's limit less 40 s. All steps
# take longer than one call: e.g. call 1 `SKIP_COMPILE=1 ... measure OUT tests pair
# profile ddp`, call 2 `... measure OUT capacity`, call 3 `... measure OUT capacity_more saves fp16`.
set -uo pipefail
root=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
deps=$root/.deps/gpu
gpu_build=$root/build-gpu  # what `build` makes on the GPU host
build=$gpu_build
[ -x "$build/src/dpunet" ] || build=$root/build  # the carried binaries of a local CUDA build
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
  bundle_runtime_libraries || return 1
  du -sh "$deps"
}

# The system libraries build/'s CUDA binaries load (glibc and the C++ runtime aside, which
# the GPU host has newer), packed so the host can supply the ones it lacks.
bundle_runtime_libraries() {
  local binaries=("$root/build/src/dpunet" "$root/build/tests/dpunet_tests" "$root/build/tests/dpunet_fault_probe")
  if ! "${binaries[0]}" version 2>/dev/null | grep -q "CUDA build: yes"; then
    echo "build/ holds no CUDA build: the GPU host will have to run 'gpu_measure.sh build'"
    return 0
  fi
  local staging
  staging=$(mktemp -d) || return 1
  ldd "${binaries[@]}" | awk '$3 ~ /^\/(usr\/)?lib\/x86_64-linux-gnu\// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|librt|libdl|libutil|ld-linux-x86-64)\.so' |
    xargs -r cp -L -t "$staging" || return 1
  tar -C "$staging" -czf "$deps/runtime-libs.tar.gz" . && rm -rf "$staging" || return 1
  echo "$root" >"$deps/built-in.txt"
  echo "carry also: build/src/dpunet build/tests/dpunet_tests build/tests/dpunet_fault_probe"
}

use_deps() {
  [ -f "$deps/offline-deps.sh" ] || { echo "no $deps: run 'scripts/gpu_measure.sh fetch' first and carry .deps/gpu" >&2; return 1; }
  # shellcheck source=/dev/null
  source "$deps/offline-deps.sh" env "$deps/debs" || return 1
  # The carried PMIx looks for its plugins where Debian installs them; on a host with its
  # own PMIx there, they are another version's.
  export PMIX_MCA_mca_base_component_path=$OPAL_PREFIX/lib/x86_64-linux-gnu/pmix2/lib/pmix
  # Its zlib plugin does not load against the carried PMIx; large-message compression is
  # all that is lost, and the warning would fill the log at every mpirun.
  export PMIX_MCA_pcompress_base_silence_warning=1
  # ... and the failed load itself is reported by every process at every start.
  export PMIX_MCA_mca_base_component_show_load_errors=none
  export CPATH=$OPAL_PREFIX/include:$OPAL_PREFIX/include/hdf5/serial:${CPATH:-}
  python=$(command -v python3)
}

# One import of torch (seconds on a cold host, each one device time) for all the script
# asks of it: its packages' folder, its version, and what it was built with.
torch_facts() {
  [ -n "${torch_site:-}" ] && return 0
  local facts
  facts=$("$python" -c 'import os, torch
print(os.path.dirname(os.path.dirname(torch.__file__)))
print(torch.__version__.split("+")[0])
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())') || return 1
  torch_site=$(sed -n 1p <<<"$facts")
  torch_version=$(sed -n 2p <<<"$facts")
  torch_versions=$(sed -n 3p <<<"$facts")
}

# Lets build/'s carried binaries run here: LibTorch, NCCL and the CUDA runtime from the
# host's Python packages and toolkit, and each bundled library the host lacks. The
# binaries' compiled-in paths (the tests find dpunet and their fixtures through them)
# point into the source tree they were built in, so that path leads here too.
use_carried_binaries() {
  local built_in
  built_in=$(cat "$deps/built-in.txt") || return 1
  # Only the tests need it (their fixtures' paths): a failure costs them, not the figures.
  if [ "$built_in" != "$root" ] && [ ! -e "$built_in" ]; then
    mkdir -p "$(dirname "$built_in")" && ln -s "$root" "$built_in" ||
      echo "warning: cannot link $built_in to $root; the tests will not find their fixtures" >&2
  fi
  local site missing=$deps/missing-libs
  torch_facts || return 1
  site=$torch_site
  mkdir -p "$deps/runtime-libs" "$missing" && tar -C "$deps/runtime-libs" -xzf "$deps/runtime-libs.tar.gz" || return 1
  # The cache listing is saved first: `ldconfig -p | grep -q` under pipefail fails with
  # SIGPIPE when grep stops early, and would take a library the host has for missing.
  local lib cache=$deps/ldconfig.txt ldconfig
  ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
  # Without the listing every bundled library is linked in: the old behaviour, not a stop.
  "$ldconfig" -p >"$cache" 2>/dev/null || { echo "warning: no ldconfig -p; using every bundled library" >&2; : >"$cache"; }
  for lib in "$deps"/runtime-libs/*.so*; do
    grep -q "/$(basename "$lib")\$" "$cache" || ln -sf "$lib" "$missing/"
  done
  export LD_LIBRARY_PATH=$site/torch/lib:$site/nvidia/nccl/lib:$site/nvidia/cu13/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH:$missing
}

build_gpu() {
  use_deps || return 1
  local generator=(-G Ninja)
  command -v ninja >/dev/null || generator=(-G "Unix Makefiles")
  # Always build-gpu/: a carried build/ holds the VM's cache and paths.
  cmake -S "$root" -B "$gpu_build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DDPUNET_PYTHON="$python" \
    -DDPUNET_WITH_NCCL=ON || return 1
  cmake --build "$gpu_build" -j "$(nproc)"
}

# Seconds left before DEADLINE_S; at most `limit`.
time_left() {
  local left=$(( ${DEADLINE_S:-560} - SECONDS ))
  echo $(( left < $1 ? left : $1 ))
}

# `limited MAX COMMAND...`: runs COMMAND for at most MAX seconds and never past
# DEADLINE_S; SIGKILL 15 s after the SIGTERM (sent 15 s early, so that the kill too
# comes before DEADLINE_S), since dpunet train takes SIGTERM as a stop request that
# waits for the step to end (and a stalled step never ends). Exit 124 when it timed out,
# $SKIPPED when too little time was left to start it.
limited() {
  local limit
  limit=$(time_left "$1")
  shift
  if [ "$limit" -lt 20 ]; then
    # To stderr: callers send it to the log with the command's own output (say would
    # write it there twice).
    echo "skipped, ${limit}s left before DEADLINE_S: $*" >&2
    return "$SKIPPED"
  fi
  timeout -k 15 "$((limit - 15))" "$@"
}

# Runs one benchmark command and appends its JSON, tagged, to the results file; skipped
# when less than STEP_MIN seconds (default 20) are left: a benchmark that prints its JSON
# at the end and cannot get there in time would only spend them.
record() {
  local tag=$1
  shift
  local limit
  # What the command itself gets: limited stops it 15 s before its limit.
  limit=$(( $(time_left "${STEP_TIMEOUT:-240}") - 15 ))
  if [ "$limit" -lt "${STEP_MIN:-20}" ]; then  # said here, so that the progress on stdout shows it too
    say "== $tag: skipped, ${limit}s left before DEADLINE_S (it needs ${STEP_MIN:-20}s)"
    return
  fi
  say "== $tag (${limit}s at most): $*"
  local json status log_lines
  log_lines=$(wc -l <"$log")
  local started=$SECONDS
  if json=$(limited "${STEP_TIMEOUT:-240}" "$@" 2>>"$log"); then
    "$python" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["tag"]=sys.argv[1]; print(json.dumps(d))' \
      "$tag" <<<"$json" >>"$results" || { failed "$tag: output was not JSON:"; echo "$json" >>"$log"; }
  else
    status=$?
    if [ "$status" -eq "$SKIPPED" ]; then
      say "$tag: skipped, no time left before DEADLINE_S"
      return
    fi
    failed "$tag: failed or timed out (exit $status)"
    # bench train's largest-batch searches say their whole report so far on stderr: the
    # last one this command said is kept, marked partial, rather than lost with the JSON.
    local so_far
    so_far=$(tail -n +"$((log_lines + 1))" "$log" | sed -n 's/^bench train: report so far //p' | tail -n 1)
    if [ -n "$so_far" ]; then
      local why="failed (exit $status)"
      # 137 is SIGKILL: timeout's own kill 15 s after its SIGTERM, or the kernel's OOM
      # killer; only a run that lasted its whole limit was timeout's.
      if [ "$status" -eq 124 ] || { [ "$status" -eq 137 ] && [ $((SECONDS - started)) -ge "$limit" ]; }; then
        why="timed out"
      elif [ "$status" -eq 137 ]; then
        why="killed (exit 137) after $((SECONDS - started))s, before its ${limit}s limit: out of host memory?"
      fi
      "$python" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["tag"]=sys.argv[1]; d["partial"]=sys.argv[2]; print(json.dumps(d))' \
        "$tag" "$why" <<<"$so_far" >>"$results" && say "$tag: its report so far recorded, marked partial ($why)"
    fi
  fi
}

# Appends a line to the log, and a copy to stdout so the caller sees progress.
say() { echo "$*" | tee -a "$log"; }

# say, for a part that failed: counted, and listed again at the end, where it sets the exit status.
failures=()
failed() {
  say "$*"
  failures+=("$*")
}

# limited's status for a command it did not start: no time was left (not a failure).
SKIPPED=200
# `ended STATUS WHAT`: says how WHAT ended, a failure (counted) unless it succeeded or
# was skipped for lack of time; returns STATUS.
ended() {
  case $1 in
    0) say "$2: done" ;;
    "$SKIPPED") say "$2: skipped, no time left before DEADLINE_S" ;;
    *) failed "$2: failed (exit $1)" ;;
  esac
  return "$1"
}

# Runs "$@" in bench/ (the PyTorch reference's folder), in this shell: a failure it
# counts is kept, as a subshell's would not be.
in_bench() {
  cd "$root/bench" || return 1
  "$@"
  local status=$?
  cd "$root" || return 1
  return $status
}

# TEST_FILTER: another Catch2 test spec, e.g. '[gpu]~[e2e]' for all but the end-to-end ones.
step_tests() {
  local filter=${TEST_FILTER:-[gpu]}
  say "== $filter tests"
  (cd "$build/tests" && limited 240 ./dpunet_tests "$filter" --durations yes) >>"$log" 2>&1
  ended $? "$filter tests"
}

# The trainer itself on the GPU: bf16, channels_last, valid padding, checkpointing,
# DeviceBatches; stopped at step 20 and resumed to 40; then predict from its checkpoint.
step_smoke() {
  local smoke=$root/runs/gpu_smoke
  rm -rf "$smoke" && mkdir -p "$smoke"
  local train=("$dpunet" train configs/unet572.yaml --set run.dir="$smoke/run"
    --set data.train="$smoke/data/train-*.h5" --set data.val="$smoke/data/val-*.h5"
    --set train.steps=40 --set schedule.warmup_steps=5 --set validation.every_steps=20 --set checkpoint.every_steps=20
    --set logging.every_steps=5 --set distributed.timeout_s=120)
  say "== train smoke"
  {
    synth_data "$smoke" &&
      limited 200 "${train[@]}" --stop-at-step 20 &&
      echo "== resume smoke" &&
      limited 200 "${train[@]}" --resume auto &&
      echo "== predict smoke" &&
      limited 120 "$dpunet" predict "$smoke/data/val-00000.h5" --checkpoint "$smoke/run/checkpoints/step-00000040.ckpt" \
        --out "$smoke/predictions" --eval --no-png
  } >>"$log" 2>&1
  ended $? "train, resume and predict smoke"
  [ -f "$smoke/predictions/eval.json" ] && cat "$smoke/predictions/eval.json" >>"$log"
}

# The smoke data: 64 synthetic 640x640 samples in 2 shards and 8 for validation, in DIR/data.
synth_data() { "$dpunet" data synth --out "$1/data" --samples 64 --shards 2 --val-samples 8 --size 640 >>"$log" 2>&1; }

# 40 steps of configs/unet572.yaml on DIR/data into DIR/RUN; more --set overrides after.
train_40() {
  local dir=$1 run=$2
  shift 2
  limited 300 "$dpunet" train configs/unet572.yaml --set run.dir="$dir/$run" --set data.train="$dir/data/train-*.h5" \
    --set data.val="$dir/data/val-*.h5" --set train.steps=40 --set schedule.warmup_steps=5 \
    --set checkpoint.every_epoch=false --set logging.every_steps=5 --set distributed.timeout_s=120 "$@" >>"$log" 2>&1
}

# What a checkpoint every 5 steps costs the step (the write runs on a background thread;
# the loop only copies the state to the host): the same 40 steps with and without.
step_saves() {
  local dir=$root/runs/gpu_saves
  rm -rf "$dir" && mkdir -p "$dir"
  synth_data "$dir" || { failed "saves: synth failed"; return; }
  local every
  for every in 0 5; do
    train_40 "$dir" "every$every" --set validation.every_steps=1000 --set checkpoint.every_steps=$every
    ended $? "saves: training with every_steps=$every" || continue
    # Wall time per step from the first log window's end (cuDNN autotuning done) to the
    # last: the logged step_ms leaves out snapshot pauses, which are what is measured here.
    "$python" - "$dir/every$every/metrics.jsonl" "$every" >>"$results" <<'PY' || failed "saves: no metrics"
import json, statistics, sys
train = [r for r in (json.loads(line) for line in open(sys.argv[1])) if r.get("kind") == "train"]
first, last = train[0], train[-1]
print(json.dumps({"tag": "saves_every_" + sys.argv[2], "checkpoint_every_steps": int(sys.argv[2]),
                  "wall_ms_per_step": 1000 * (last["time_s"] - first["time_s"]) / (last["step"] - first["step"]),
                  "median_window_step_ms": statistics.median(r["step_ms"] for r in train[1:]),
                  "data_wait": [r["data_wait"] for r in train]}))
PY
  done
}

# fp16 training (dynamic loss scaling, decided on the device): 40 steps, its losses and
# step times next to bf16's.
step_fp16() {
  local dir=$root/runs/gpu_fp16
  rm -rf "$dir" && mkdir -p "$dir"
  synth_data "$dir" || { failed "fp16: synth failed"; return; }
  local dtype
  for dtype in fp16 bf16; do
    train_40 "$dir" "$dtype" --set precision.dtype=$dtype
    ended $? "fp16: training with $dtype" || continue
    "$python" - "$dir/$dtype/metrics.jsonl" "$dtype" >>"$results" <<'PY' || failed "fp16: no metrics for $dtype"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
train = [r for r in rows if r.get("kind") == "train"]
print(json.dumps({"tag": "train_" + sys.argv[2], "losses": [r["loss"] for r in train],
                  "step_ms": [r["step_ms"] for r in train],
                  "val": [r for r in rows if r.get("kind") == "val"]}))
PY
  done
}

# Side by side on the same GPU: same padding (the PyTorch reference U-Net pads), bf16,
# channels_last, fused AdamW, clip 12, batch 8, checkpointing off and on.
# MFU against the GPU's dense bf16 peak, which dpunet looks up by the GPU's name and
# reports (PEAK_TFLOPS overrides it); PyTorch's against the same figure.
common=(--size 572 --padding same --precision bf16 ${PEAK_TFLOPS:+--peak-tflops "$PEAK_TFLOPS"})
common_valid=(--size 572 --padding valid --precision bf16 ${PEAK_TFLOPS:+--peak-tflops "$PEAK_TFLOPS"})
torch_peak() {
  if [ -n "${PEAK_TFLOPS:-}" ]; then
    echo "$PEAK_TFLOPS"
    return
  fi
  "$python" -c 'import json, sys
peaks = [json.loads(line).get("peak_tflops") for line in open(sys.argv[1]) if line.strip()]
print(([p for p in peaks if p] or [0])[-1])' "$results" 2>/dev/null || echo 0
}
step_pair() {
  record dpunet_b8 "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing both
  local peak
  peak=$(torch_peak)
  in_bench record torch_eager_b8 "$python" pytorch_reference.py --size 572 --batch 8 --precision bf16 \
    --peak-tflops "$peak"
  # PyTorch's checkpointed run recomputes all ten blocks: its like is the variants step's
  # dpunet_b8_all (--policy all), not dpunet_b8's balanced row.
  in_bench record torch_eager_b8_ckpt "$python" pytorch_reference.py --size 572 --batch 8 --precision bf16 \
    --checkpointing --peak-tflops "$peak"
  # SKIP_COMPILE=1 leaves torch.compile out (minutes of compiling) when its figure is known.
  [ -n "${SKIP_COMPILE:-}" ] && return
  STEP_TIMEOUT=300 STEP_MIN=120 in_bench record torch_compile_b8 "$python" pytorch_reference.py --size 572 --batch 8 \
    --precision bf16 --compile --peak-tflops "$peak"
}

# dpunet's plain step next to torch.compile's alone (the pair's compile half, for a call with
# little device time left), then PyTorch eager when time remains.
step_compile() {
  record dpunet_b8_plain "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing off
  local peak
  peak=$(torch_peak)
  STEP_TIMEOUT=300 STEP_MIN=120 in_bench record torch_compile_b8 "$python" pytorch_reference.py --size 572 --batch 8 \
    --precision bf16 --compile --peak-tflops "$peak"
  in_bench record torch_eager_b8 "$python" pytorch_reference.py --size 572 --batch 8 --precision bf16 \
    --peak-tflops "$peak"
}

# dpunet's own kernels one at a time against ATen's, and every block recomputed: what each
# contributes to the pair's figure.
step_variants() {
  record dpunet_b8_unfused "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing off --fuse-norm-relu 0
  record dpunet_b8_aten_pool_concat "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing off \
    --pool-concat-kernels 0
  record dpunet_b8_all "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing on --policy all
}

# The issue's checkpointing target in one process: the plain step and min_memory's (every
# block but the last decoder block and outc, and split skip convolutions) timed one
# after the other at batch 8, then each one's largest batch (two searches, each new batch
# autotuned by cuDNN: about 390 s on the H200 when a try was two steps; each try is now a
# whole timed run, so estimated 400-430 s there, about half on an H100). Each try is said
# on stderr, in the log, and the report so far before and after each search: a timeout
# keeps the last as a partial record (record, above).
step_capacity() {
  STEP_TIMEOUT=${STEP_TIMEOUT:-480} STEP_MIN=240 record dpunet_b8_largest_min_memory "$dpunet" bench train "${common[@]}" \
    --batch 8 --checkpointing both --policy min_memory --max-batch
}

# The same under the caching allocator's expandable segments: if fragmentation near the
# limit is what stops more steps fitting where two did (call 3, docs/benchmarks.md), the
# largest batches grow here.
step_capacity_expandable() {
  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True STEP_TIMEOUT=${STEP_TIMEOUT:-480} STEP_MIN=240 \
    record dpunet_b8_largest_min_memory_expandable "$dpunet" bench train "${common[@]}" --batch 8 \
    --checkpointing both --policy min_memory --max-batch
}

# min_memory's split skip convolutions against the concatenation, at batch 8: step time
# and peak memory, each next to the plain step of its own process; and where the split
# run's steps reach their peak allocation (OUT/memory_peaks.txt, from its traces).
step_split() {
  record dpunet_b8_min_memory_split "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing both \
    --policy min_memory --split-skip-conv 1 --profile "$out/trace_min_memory"
  record dpunet_b8_min_memory_unsplit "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing both \
    --policy min_memory --split-skip-conv 0
  # Valid padding (configs/unet572.yaml's): the split convolution reads a centre window of
  # each skip map, whose gradient comes back NHWC (model/skip_window.h).
  record dpunet_b8_valid_min_memory_split "$dpunet" bench train "${common_valid[@]}" --batch 8 --checkpointing both \
    --policy min_memory --split-skip-conv 1
  record dpunet_b8_valid_min_memory_unsplit "$dpunet" bench train "${common_valid[@]}" --batch 8 --checkpointing both \
    --policy min_memory --split-skip-conv 0
  # --profile with --checkpointing both traces the plain step (T.json) and min_memory's
  # (T.checkpointed.json): each section of memory_peaks.txt says which it is.
  local trace step
  for trace in "$out"/trace_min_memory.json "$out"/trace_min_memory.checkpointed.json; do
    [ -f "$trace" ] || continue
    step="the plain step, no checkpointing"
    [[ $trace == *.checkpointed.json ]] && step="min_memory's step, split skip convolutions"
    if [ "$(time_left 30)" -ge 30 ]; then
      { echo "== $trace ($step)"; "$python" bench/trace_memory.py "$trace" --context 16; } >>"$out/memory_peaks.txt" 2>>"$log"
    else
      say "split: no time left to read $trace"
    fi
    gzip -f "$trace"  # under the size of what a call returns
  done
}

# The other policies' largest batches and larger batches' MFU, each its own command (a
# timeout loses one figure, not all).
step_capacity_more() {
  local STEP_TIMEOUT=${STEP_TIMEOUT:-300}
  STEP_MIN=240 record dpunet_b8_largest "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing on \
    --policy all --max-batch
  # Only the BatchNorm+ReLU outputs recomputed: the plain step's memory less one map per block.
  STEP_MIN=240 record dpunet_b8_largest_norm_relu "$dpunet" bench train "${common[@]}" --batch 8 \
    --checkpointing on --policy norm_relu --max-batch
  record dpunet_b16 "$dpunet" bench train "${common[@]}" --batch 16 --checkpointing off
  record dpunet_b24 "$dpunet" bench train "${common[@]}" --batch 24 --checkpointing off
  record dpunet_b32 "$dpunet" bench train "${common[@]}" --batch 32 --checkpointing off
  record dpunet_valid_b8 "$dpunet" bench train "${common_valid[@]}" --batch 8 --checkpointing both
}

# Kernel time per step, dpunet next to PyTorch eager and torch.compile (batch 8, no
# checkpointing; SKIP_COMPILE_PROFILE=1 leaves torch.compile out): OUT/kernels.txt, and
# the traces themselves, gzipped.
step_profile() {
  record dpunet_b8_profiled "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing off \
    --profile "$out/trace_dpunet"
  in_bench record torch_eager_b8_profiled "$python" pytorch_reference.py --size 572 --batch 8 \
    --precision bf16 --profile "$out/trace_eager.json"
  if [ -z "${SKIP_COMPILE_PROFILE:-}${SKIP_COMPILE:-}" ]; then
    STEP_TIMEOUT=300 STEP_MIN=120 in_bench record torch_compile_b8_profiled "$python" pytorch_reference.py --size 572 \
      --batch 8 --precision bf16 --compile --profile "$out/trace_compile.json"
  fi
  # Only the traces that were written: one failed benchmark leaves the others' table.
  local traces=() name
  for name in dpunet eager compile; do
    [ -f "$out/trace_$name.json" ] && traces+=("$name=$out/trace_$name.json")
  done
  [ ${#traces[@]} -gt 0 ] || { failed "profile: no traces written"; return; }
  if [ "$(time_left 30)" -ge 30 ]; then
    "$python" bench/trace_kernels.py "${traces[@]}" >"$out/kernels.txt" 2>>"$log"
  else
    say "profile: no time left to read the traces"
  fi
  gzip -f "$out"/trace_*.json
}

# The plain step fed through the training loader (64 synthetic 640x640 samples cut to
# 572x572 patches with the training defaults' augmentation, 8 workers, pinned batches
# copied on a side stream), next to dpunet_b8's synthetic batches: the breakdown's data
# wait at this step time.
step_loader() {
  local dir=$root/runs/gpu_loader
  rm -rf "$dir" && mkdir -p "$dir"
  synth_data "$dir" || { failed "loader: synth failed"; return; }
  record dpunet_b8_loader "$dpunet" bench train "${common[@]}" --batch 8 --checkpointing off \
    --data "$dir/data/train-*.h5" --workers 8
}

step_ddp() { record ddp_cuda "$dpunet" bench ddp --device cuda --size 572 --batch 2; }

# The CPU reducer's overlap where a core per rank is left for communication (the 2-core
# VM has none): 2 ranks of 4 and of 7 intra-op threads on the host's cores.
step_cpu_ddp() {
  local mpi=(mpirun --allow-run-as-root -np 2 --bind-to none -x LD_LIBRARY_PATH -x PMIX_MCA_mca_base_component_path)
  local threads
  for threads in 4 7; do
    record "ddp_cpu_2x$threads" "${mpi[@]}" -x OMP_NUM_THREADS="$threads" "$dpunet" bench ddp --device cpu \
      --threads "$threads" --repeats 7
  done
  record allreduce_cpu_2 "${mpi[@]}" "$dpunet" bench allreduce --device cpu --min-bytes 1048576
}

measure() {
  [ -n "${1:-}" ] || { echo "usage: gpu_measure.sh measure OUT [STEP...]" >&2; return 2; }
  use_deps || return 1
  local out
  out=$(mkdir -p "$1" && cd "$1" && pwd) || return 1  # absolute: some steps run in bench/
  shift
  local steps=("$@")
  [ ${#steps[@]} -gt 0 ] || steps=(tests smoke pair variants capacity ddp)
  results=$out/gpu_results.jsonl log=$out/gpu_log.txt
  : >>"$results"
  if [ "$build" = "$root/build" ]; then use_carried_binaries || return 1; fi
  dpunet=$build/src/dpunet
  say "binaries: $build"
  # NCCL's INFO lines go to stdout, where each benchmark's JSON is read.
  unset NCCL_DEBUG
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    torch_facts && echo "$torch_versions"
  } >>"$log" 2>&1
  # A binary that does not load here (a missing library) would fail every step in turn.
  local version
  if ! version=$("$dpunet" version 2>&1); then
    say "dpunet does not run here: $version"
    return 1
  fi
  echo "$version" >>"$log"
  # Binaries built against another LibTorch than the host's fail at load or mid-run:
  # stop before spending device time on them.
  local host_torch="" built_torch
  torch_facts 2>/dev/null && host_torch=$torch_version
  built_torch=$(grep -o -i -m1 'libtorch [0-9][0-9.]*' <<<"$version" | awk '{print $2}')
  # (Unread, the PyTorch runs fail on their own; dpunet's ran above.)
  [ -n "$host_torch" ] || say "torch's version cannot be read here: the binaries' LibTorch is not compared"
  if [ -n "$built_torch" ] && [ -n "$host_torch" ] && [ "$host_torch" != "$built_torch" ]; then
    say "dpunet was built against LibTorch $built_torch, the host has torch $host_torch: rebuild (gpu_measure.sh build)"
    return 1
  fi
  local step
  for step in "${steps[@]}"; do
    declare -F "step_$step" >/dev/null || { failed "unknown step $step"; continue; }
    "step_$step"
  done
  say "results: $results ($(wc -l <"$results") lines), log: $log"
  # Where this call leaves the issue's targets (its own records only: ratios never pair
  # two machines).
  if [ -s "$results" ]; then "$python" bench/gpu_targets.py "$results" 2>&1 | tee -a "$log"; fi
  # Exit 1 when any part failed (a skip for lack of time is not a failure), naming each.
  [ ${#failures[@]} -eq 0 ] && return 0
  say "${#failures[@]} part(s) failed:"
  printf '  %s\n' "${failures[@]}" | tee -a "$log"
  return 1
}

case "${1:-}" in
  fetch) fetch ;;
  build) build_gpu ;;
  measure)
    shift
    measure "$@"
    ;;
  *)
    echo "usage: scripts/gpu_measure.sh fetch | build | measure OUT" >&2
    exit 2
    ;;
esac
