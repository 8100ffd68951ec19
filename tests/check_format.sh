#!/usr/bin/env bash
# Fails listing the C++ files that clang-format would change. Exit 77: no clang-format.
set -uo pipefail
root=$1
command -v clang-format >/dev/null || { echo "skipped: clang-format not installed"; exit 77; }
# Each clang-format release lays code out a little differently: the tree follows 14's
# (Debian 12's and Ubuntu 22.04's).
major=$(clang-format --version | grep -o 'version [0-9]*' | grep -o '[0-9]*$')
[ "$major" = 14 ] || { echo "skipped: clang-format $major; the tree is formatted by clang-format 14"; exit 77; }
cd "$root" || exit 1
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cpp.in' 2>/dev/null || find src tests -name '*.cpp' -o -name '*.h' -o -name '*.cu')
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "not formatted (run: clang-format -i FILE):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "${#files[@]} files formatted"
