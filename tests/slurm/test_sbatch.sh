#!/usr/bin/env bash
# slurm/train.sbatch against a real one-node SLURM: submit 2 CPU ranks, send the
# preemption signal, and check that the job checkpointed, was requeued, resumed from the
# checkpoint and finished; then that SIGTERM to the batch shell checkpoints and requeues
# too, that USR2 checkpoints and ends the job, that a plain scancel leaves the job
# cancelled, and that a run whose
# rank is killed after new checkpoints is requeued and finishes, as is one that reaches
# its time limit without the USR1 warning; then the launcher inside interactive job
# steps and task-less allocations. Needs root and apt (or SLURM already installed);
# exits 77 (skipped) without them.
#   test_sbatch.sh REPO_ROOT DPUNET_BINARY
set -uo pipefail
repo=$1 binary=$2
if [ "$(id -u)" -ne 0 ] || { ! command -v slurmctld >/dev/null && ! command -v apt-get >/dev/null; }; then
  echo "skipped: the SLURM test needs root and apt-get (or SLURM installed)"
  exit 77
fi
work=$(mktemp -d /tmp/dpunet-slurm-test-XXXXXX)
cleanup() {
  scancel --quiet --name=dpunet-test 2>/dev/null || true
  "$repo/tests/slurm/local_slurm.sh" stop "$work/slurm"
  if [ -n "${DPUNET_KEEP_TEST_DIR:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# On failure, what SLURM thought too: a job that never started says why only there.
fail() {
  echo "FAIL: $*"
  echo "--- job output:"
  cat "$work"/*.out 2>/dev/null
  echo "--- squeue / sinfo:"
  squeue -a -o '%i %T %r %M' 2>&1
  sinfo -N -o '%N %t %E' 2>&1
  echo "--- slurmctld.log (end):"
  tail -n 30 "$work/slurm/log/slurmctld.log" 2>/dev/null
  echo "--- slurmd.log (end):"
  tail -n 30 "$work/slurm/log/slurmd.log" 2>/dev/null
  exit 1
}
# TEXT as an extended regular expression matching it literally (paths in pgrep patterns).
regex_literal() { sed 's/[][\.^$|?*+(){}]/\\&/g' <<<"$1"; }

"$repo/tests/slurm/local_slurm.sh" start "$work/slurm"
case $? in
  0) ;;
  77) echo "skipped: no SLURM to test with (it could not be installed, or the machine has its own)"; exit 77 ;;
  *) fail "could not start SLURM" ;;
esac
"$binary" data synth --out "$work/data" --samples 24 --shards 2 --size 48 --seed 1 >/dev/null || fail "synth"
cat >"$work/config.yaml" <<CONF
run: {seed: 1, device: cpu}
model: {n_classes: 3, base_channels: 8, depth: 2, norm: batch}
data: {train: '$work/data/train-*.h5', workers: 1}
augment: {patch_size: 32}
train: {batch_size: 2, steps: 400}
schedule: {warmup_steps: 2}
checkpoint: {every_steps: 10}
logging: {every_steps: 1, progress: lines}
CONF
# This machine has no GPUs: the only change to the template is dropping its GPU request.
grep -v -- '--gpus-per-node' "$repo/slurm/train.sbatch" >"$work/train.sbatch"

cd "$repo" || exit 1

# submit RUN SCRIPT MINUTES [train arguments]: a 2-rank job training into $work/RUN;
# prints its id.
submit() {
  local run=$1 script=$2 minutes=$3
  shift 3
  DPUNET_BIN=$binary DPUNET_RUN_DIR=$work/$run sbatch --parsable --nodes=1 --ntasks-per-node=2 \
    --cpus-per-task=1 --time="$minutes" --job-name=dpunet-test --output="$work/%x-%j.out" \
    "$script" "$work/config.yaml" "$@"
}
# wait_for_line TEXT FILE: up to 3 minutes.
wait_for_line() {
  for _ in $(seq 1 900); do grep -qF -- "$1" "$2" 2>/dev/null && return 0; sleep 0.2; done
  return 1
}
# expect_lines FILE WHOSE LINE...: fails unless FILE holds every LINE.
expect_lines() {
  local file=$1 whose=$2 expected
  shift 2
  for expected in "$@"; do grep -qF -- "$expected" "$file" || fail "$whose output lacks '$expected'"; done
}
# start_requeued JOB: once the requeued JOB is pending, start it now (SLURM holds a
# requeued job for a while before it is eligible again), but only once the previous
# start's step daemons have exited: they remove the step's PMIx socket a few seconds
# after the node already shows idle, and a restart before that fails to launch its tasks.
start_requeued() {
  local job=$1
  for _ in $(seq 1 300); do [ "$(squeue -h -j "$job" -o %T 2>/dev/null)" = PENDING ] && break; sleep 0.2; done
  echo "requeued: $(squeue -h -j "$job" -o '%T %r')"
  for _ in $(seq 1 300); do
    sinfo -h -o %t | grep -q '^idle' && ! pgrep -f "slurmstepd: \[$job\." >/dev/null && break
    sleep 0.2
  done
  sleep 1
  scontrol update JobId="$job" StartTime=now 2>/dev/null || true
}

# The line "checkpointed; requeueing" comes before `scontrol requeue`: SLURM's own count
# of restarts says the requeue happened.
expect_requeued() {
  local job=$1 label=$2 out=$3
  for _ in $(seq 1 300); do
    scontrol show job "$job" 2>/dev/null | grep -q "Restarts=[1-9]" && break
    sleep 0.2
  done
  scontrol show job "$job" 2>/dev/null | grep -q "Restarts=[1-9]" || fail "$label was not requeued"
  ! grep -q "scontrol requeue failed" "$out" || fail "$label: scontrol requeue failed"
}

job=$(submit run "$work/train.sbatch" 10) || fail "sbatch refused the script"
out=$work/dpunet-test-$job.out
echo "submitted job $job"
# Steps of this tiny model take milliseconds: 400 of them leave the signal seconds to
# arrive (with 40, a run could finish before scancel's signal reached it).
wait_for_line 'step 3/' "$out" || fail "the job did not start training"
scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1 failed"
start_requeued "$job"
for _ in $(seq 1 900); do [ -f "$work/run/DONE" ] && break; sleep 0.2; done
sleep 1
[ -f "$work/run/DONE" ] || fail "the run never finished"
expect_lines "$out" "the job's" "start 0:" "stopped by a signal at step" "checkpointed; requeueing" "start 1:" \
  "resumed from $work/run/checkpoints/step-" "done: 400 steps" "[dpunet] finished"
show=$(scontrol show job "$job" 2>/dev/null)
grep -q "Restarts=1" <<<"$show" || fail "SLURM does not count one restart: $(grep -o 'Restarts=[0-9]*' <<<"$show")"
echo "PASS: checkpointed on USR1, requeued (Restarts=1), resumed and finished"

# SIGTERM to the batch shell alone, the job still RUNNING (as when a site's preemption
# signals the batch shell with a grace time): the shell must live on to checkpoint and
# requeue.
job=$(submit run-term "$work/train.sbatch" 10) || fail "sbatch refused the script (second job)"
out=$work/dpunet-test-$job.out
wait_for_line 'step 3/' "$out" || fail "the second job did not start training"
scancel --signal=TERM --batch "$job" || fail "scancel --signal=TERM failed"
wait_for_line 'checkpointed; requeueing' "$out"
expect_lines "$out" "the TERM job's" "TERM: asking the ranks to checkpoint" "stopped by a signal at step" \
  "checkpointed; requeueing"
expect_requeued "$job" "the TERM job" "$out"
echo "PASS: checkpointed on TERM to the batch shell and requeued"

# A user's stop: USR2 to the batch shell. The ranks checkpoint, and the job ends instead
# of requeueing.
job=$(submit run-stop "$work/train.sbatch" 10) || fail "sbatch refused the script (third job)"
out=$work/dpunet-test-$job.out
wait_for_line 'step 3/' "$out" || fail "the third job did not start training"
scancel --signal=USR2 --batch "$job" || fail "scancel --signal=USR2 failed"
wait_for_line 'the job ends as asked' "$out" || fail "the USR2 job did not end as asked"
for _ in $(seq 1 300); do [ -z "$(squeue -h -j "$job" -o %T 2>/dev/null)" ] && break; sleep 0.2; done
sleep 2
state=$(squeue -h -j "$job" -o %T 2>/dev/null)
[ -z "$state" ] || fail "the stopped job is back: $state"
expect_lines "$out" "the USR2 job's" "USR2: asking the ranks to checkpoint" "stopped by a signal at step" \
  "checkpointed; the job ends as asked (USR2)"
[ -f "$work/run-stop/DONE" ] && fail "the stopped run was marked finished"
echo "PASS: USR2 to the batch shell checkpointed and ended the job"

# A user's plain scancel: every process gets SIGTERM (srun, which kills the ranks at
# once, included) and the job is cancelled: it must stay cancelled, not come back. A
# 1-minute job: a cancellation in the last 90 s before the limit is one too (without the
# warning, which a job shorter than its 5 minutes would get at once).
grep -v -- '--signal=' "$work/train.sbatch" >"$work/train-nowarning.sbatch"
job=$(submit run-cancel "$work/train-nowarning.sbatch" 1) || fail "sbatch refused the script (fourth job)"
out=$work/dpunet-test-$job.out
wait_for_line 'step 3/' "$out" || fail "the fourth job did not start training"
scancel "$job" || fail "scancel failed"
for _ in $(seq 1 300); do [ -z "$(squeue -h -j "$job" -o %T 2>/dev/null)" ] && break; sleep 0.2; done
sleep 2
state=$(squeue -h -j "$job" -o %T 2>/dev/null)
[ -z "$state" ] || fail "the cancelled job is back: $state"
ls "$work"/run-cancel/checkpoints/step-*.ckpt >/dev/null 2>&1 || fail "the cancelled job left no checkpoint"
echo "PASS: a plain scancel left the job cancelled, its periodic checkpoints in place"

# A rank killed outright after new checkpoints (as by a GPU fault or the OOM killer): the
# job is requeued and resumes from the newest checkpoint.
job=$(submit run-fail "$work/train.sbatch" 10) || fail "sbatch refused the script (fifth job)"
out=$work/dpunet-test-$job.out
wait_for_line 'step 25/' "$out" || fail "the fifth job did not train to step 25"
rank=$(pgrep -f -- "^$(regex_literal "$binary train $work/config.yaml ").*run.dir=$(regex_literal "$work/run-fail")" |
  head -n 1)
[ -n "$rank" ] || fail "no rank of the fifth job to kill"
kill -KILL "$rank"
start_requeued "$job"
for _ in $(seq 1 900); do [ -f "$work/run-fail/DONE" ] && break; sleep 0.2; done
sleep 1
[ -f "$work/run-fail/DONE" ] || fail "the run whose rank was killed never finished"
expect_lines "$out" "the fifth job's" "was saved during this start; requeueing" \
  "resumed from $work/run-fail/checkpoints/step-" "[dpunet] finished"
echo "PASS: a run whose rank was killed after new checkpoints was requeued and finished"

# The time limit reached without the USR1 warning (SLURM's SIGTERM, the job TIMEOUT, shown
# as COMPLETING): the script still requeues the job. The ranks of this tiny model write
# their checkpoint within the moment srun gives them after its own SIGTERM; a real
# model's may not (slurm/README.md): the warning is what guarantees one.
job=$(submit run-limit "$work/train-nowarning.sbatch" 1 --set train.steps=1000000) ||
  fail "sbatch refused the script (sixth job)"
out=$work/dpunet-test-$job.out
wait_for_line 'checkpointed; requeueing' "$out"
expect_lines "$out" "the time-limited job's" "stopped by a signal at step" "checkpointed; requeueing job $job"
expect_requeued "$job" "the time-limited job" "$out"
scancel "$job"
echo "PASS: a job at its time limit without the warning checkpointed and was requeued"

# The launcher in an interactive shell, which is itself a job step holding the
# allocation's CPUs (srun --pty bash): the ranks' step must overlap it, not wait for it
# forever. Launched twice (srun -n 2), only the first task starts ranks.
# Quoted for the bash -c command lines below (the clone's path may hold spaces).
printf -v launch 'DPUNET_BIN=%q %q --cpu' "$binary" "$repo/launcher/dpunet-launch"
interactive=$(timeout 120 srun --job-name=dpunet-test -n 1 bash -c "$launch -- version" 2>&1) ||
  fail "the launcher inside a job step did not finish: $interactive"
[ "$(grep -c '^libtorch' <<<"$interactive")" -eq 1 ] || fail "one rank expected inside a 1-task step: $interactive"
twice=$(timeout 120 srun --job-name=dpunet-test -n 2 bash -c "$launch -- version" 2>&1)
grep -q 'started as task 1 of SLURM step' <<<"$twice" || fail "the second launcher task was not refused: $twice"
[ "$(grep -c '^libtorch' <<<"$twice")" -eq 2 ] || fail "the first task should start the step's 2 ranks: $twice"
# A shell that is a smaller step of its job sees the step's task count: refused rather
# than launching the step's one rank.
small=$(timeout 120 salloc --job-name=dpunet-test -n 2 srun -n 1 bash -c "$launch -- version" 2>&1)
grep -q 'with 1 task(s) of the job.s 2' <<<"$small" || fail "a 1-task step of a 2-task job: $small"
# An allocation that names no task count (salloc -N 1): the ranks are asked for, not
# counted on this (login) node.
no_tasks=$(timeout 120 salloc --job-name=dpunet-test -N 1 bash -c "$launch -- version" 2>&1)
grep -q 'names no task count: give -n N' <<<"$no_tasks" || fail "salloc without tasks: $no_tasks"
echo "PASS: the launcher overlaps an interactive step, runs once per step, refuses a step smaller than its job, and asks for -n without a task count"
