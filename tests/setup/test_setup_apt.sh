#!/usr/bin/env bash
# scripts/setup.sh's system packages on stand-ins: an apt-get whose `update` finds the
# package lists locked twice (a machine just booted, running its own updates) and then
# succeeds; setup waits it out and installs what is missing. A different failure of
# `update` is not retried: it ends setup with apt's own words.
#   test_setup_apt.sh REPO_ROOT
set -uo pipefail
repo=$1
work=$(mktemp -d /tmp/dpunet-setup-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$work/bin" "$work/torch"
touch "$work/torch/TorchConfig.cmake"  # a LibTorch of the user's own: no wheel fetched
stub() { printf '#!/usr/bin/env bash\n%s\n' "$2" >"$work/bin/$1" && chmod +x "$work/bin/$1"; }
# Every package present but procps.
stub dpkg-query '[ "${@: -1}" = procps ] || printf "install ok installed"'
stub clang-format-14 'echo "clang-format version 14.0.0"'
stub sudo 'exec "$@"'
run_setup() {
  PATH="$work/bin:$PATH" Torch_DIR="$work/torch" DPUNET_VENV="$work/venv" DPUNET_APT_RETRY_S=0 \
    bash "$repo/scripts/setup.sh" 2>&1
}

# apt-get: `update` fails with LOCKED_TRIES lock messages (then as FAILURE says), the
# rest succeeds; each call is counted in calls.
stub apt-get 'echo "$*" >>"'"$work"'/calls"
case " $* " in
  *" update "*)
    tries=$(grep -c " update " "'"$work"'/calls")
    if [ "$tries" -le "${LOCKED_TRIES:-0}" ]; then
      echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 812 (apt-get)" >&2; exit 100
    fi
    [ -z "${FAILURE:-}" ] || { echo "$FAILURE" >&2; exit 100; } ;;
esac
exit 0'

out=$(LOCKED_TRIES=2 run_setup)
status=$?
[ "$status" -eq 0 ] || fail "setup failed with the lists locked twice (status $status): $out"
[ "$(grep -c ' update ' "$work/calls")" -eq 3 ] || fail "expected three updates: $(cat "$work/calls")"
grep -q 'install .*procps' "$work/calls" || fail "procps was not installed: $(cat "$work/calls")"
[ "$(grep -c 'the package lists are locked by another apt' <<<"$out")" -eq 2 ] ||
  fail "the waits were not said twice: $out"

rm -f "$work/calls"
out=$(FAILURE="E: The repository 'http://example.invalid stable Release' does not have a Release file." run_setup)
status=$?
[ "$status" -ne 0 ] || fail "setup succeeded though update failed: $out"
[ "$(grep -c ' update ' "$work/calls")" -eq 1 ] || fail "a failure other than the lock was retried: $(cat "$work/calls")"
grep -q 'does not have a Release file' <<<"$out" || fail "apt's own message was not shown: $out"
grep -q 'setup: apt-get failed installing: procps' <<<"$out" || fail "setup did not say what failed: $out"
echo "setup's apt waits out a locked package list and stops on other failures, saying them"
