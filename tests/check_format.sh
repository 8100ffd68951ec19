#!/usr/bin/env bash
# Fails listing the C++ files that clang-format would change. Exit 77: no clang-format.
set -uo pipefail
root=$1
# Each clang-format release lays code out a little differently: the tree follows 14's
# (Debian 12's and Ubuntu 22.04's; scripts/setup.sh puts one in the virtualenv elsewhere).
major() { "$1" --version 2>/dev/null | grep -o 'version [0-9]*' | grep -o '[0-9]*$'; }
clang_format=""
for candidate in clang-format-14 clang-format "${DPUNET_VENV:-$root/.venv}/bin/clang-format"; do
  command -v "$candidate" >/dev/null && [ "$(major "$candidate")" = 14 ] && { clang_format=$candidate; break; }
done
[ -n "$clang_format" ] || { echo "skipped: no clang-format 14 (scripts/setup.sh installs one)"; exit 77; }
cd "$root" || exit 1
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cpp.in' 2>/dev/null || find src tests -name '*.cpp' -o -name '*.h' -o -name '*.cu')
bad=()
for f in "${files[@]}"; do
  "$clang_format" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "not formatted (run: $clang_format -i FILE):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "${#files[@]} files formatted"
