#!/usr/bin/env bash
# The quickstart: installs what is missing, builds, writes the synthetic shards (once),
# trains configs/quickstart.yaml on 2 CPU ranks and plots the curves.
# Extra arguments go to `dpunet train`, e.g. --resume auto or --set train.steps=100.
set -euo pipefail
root=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
build=${DPUNET_BUILD_DIR:-$root/build}
cd "$root"

"$root/scripts/setup.sh"
"$root/scripts/build.sh"
dpunet=$build/src/dpunet
if [ ! -f data/synth/val-00000.h5 ]; then
  "$dpunet" data synth --out data/synth --samples 256 --shards 4 --val-samples 32 --size 128 --overwrite >/dev/null
  echo "[quickstart] synthetic shards written to data/synth/"
fi
# The run directory: the config's, or one given among the arguments (--set run.dir=DIR).
run_dir=runs/quickstart
for argument in "$@"; do
  case $argument in *run.dir=*) run_dir=${argument#*run.dir=} ;; esac
done
DPUNET_BIN=$dpunet "$root/launcher/dpunet-launch" --cpu -n 2 -- train configs/quickstart.yaml "$@"
"$dpunet" plot "$run_dir" >/dev/null
echo "[quickstart] checkpoints: $run_dir/checkpoints/ (latest: $(cat "$run_dir/checkpoints/latest"))"
echo "[quickstart] metrics: $run_dir/metrics.jsonl, curves: $run_dir/curves.png"
