#!/usr/bin/env bash
# Keeps README.md honest: every command in its bash blocks is checked against the
# repository and the built binary. scripts/test.sh and scripts/quickstart.sh are run in
# full by CI (.ci/run); launcher lines run with --dry-run; dpunet lines must name an
# existing subcommand and only options its --help lists (--print-config lines run for
# real); sbatch lines must name a script that parses.
#   check_readme.sh REPO_ROOT DPUNET_BINARY
set -uo pipefail
root=$1 binary=$2
cd "$root" || exit 1
failures=0
fail() { echo "README: $*"; failures=$((failures + 1)); }

check_dpunet() {  # the words after the binary
  # Subcommands are the leading words that the parent's --help lists as subcommands.
  local words=() help option
  help=$("$binary" --help 2>&1)
  for w in "$@"; do
    grep -qE "^  $w( |$)" <<<"$(sed -n '/^Subcommands:/,$p' <<<"$help")" || break
    words+=("$w")
    help=$("$binary" "${words[@]}" --help 2>&1)
  done
  [ ${#words[@]} -gt 0 ] || { fail "'dpunet $1' is not a command"; return; }
  for option in "$@"; do
    case $option in
      --*) option=${option%%=*}
           # As an option of the list (`  --tile INT`, `-h,--help`), not a word of some prose.
           grep -qE -- "^ +(-[a-zA-Z],)?$option([ =,]|$)" <<<"$help" ||
             fail "'dpunet ${words[*]}' has no option $option" ;;
    esac
  done
}

# Bash blocks, with backslash continuations joined and trailing comments dropped.
mapfile -t commands < <(awk '/^```bash/{on=1; next} /^```/{on=0} on' README.md |
                        sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | sed -e 's/[[:space:]]\+#.*$//' -e 's/[[:space:]]\+/ /g')
checked=0
for line in "${commands[@]}"; do
  [ -n "$line" ] || continue
  checked=$((checked + 1))
  eval "set -- $line"
  [ "${1:-}" = mpirun ] && shift 3  # mpirun -np N
  case $1 in
    scripts/*.sh) [ -x "$1" ] || fail "$1 is missing or not executable" ;;
    sbatch)
      script=$(printf '%s\n' "$@" | grep -m1 '\.sbatch$')
      { [ -f "$script" ] && bash -n "$script"; } || fail "$script is missing or does not parse" ;;
    launcher/dpunet-launch)
      shift
      DPUNET_BIN=$binary launcher/dpunet-launch --dry-run "$@" >/dev/null 2>&1 ||
        fail "launcher line fails with --dry-run: $line" ;;
    build/src/dpunet)
      shift
      if [[ " $* " == *" --print-config "* ]]; then
        "$binary" "$@" >/dev/null 2>&1 || fail "fails: $line"
      else
        check_dpunet "$@"
      fi ;;
    *) fail "no check for this command: $line" ;;
  esac
done
echo "checked $checked README commands, $failures problems"
# The README holds over twenty: a handful found means the blocks were not recognised.
[ "$checked" -ge 10 ] || fail "only $checked README commands found: are the code blocks still \`\`\`bash?"
[ "$failures" -eq 0 ]
