#!/usr/bin/env bash
# Runs a test executable under `mpirun -np N`, except when CTest discovery asks it to list
# its tests (one listing, not N). Usage: mpi_test_launcher.sh MPIEXEC N EXECUTABLE ARGS...
set -euo pipefail
mpiexec=$1 ranks=$2
shift 2
for arg in "$@"; do
  case $arg in --list-*) exec "$@" ;; esac
done
# Root in containers and more ranks than cores are both normal for tests.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec "$mpiexec" -np "$ranks" --oversubscribe --bind-to none "$@"
