#!/usr/bin/env bash
# Fails when first-party C code calls a function STYLE.md bans. Usage: check-banned.sh [ROOT]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
banned='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strtok|gets|atoi|atol|atoll)[[:space:]]*\('
files=$(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]')
files=$(printf '%s\n' $files | grep -v -e '^build' -e '\.pb-c\.' -e '/gen/' || true)
[ -n "$files" ] || { echo "check-banned: no C files"; exit 0; }
# Strip // and /* */ comments and string literals crudely so prose does not trip the check.
hits=$(for f in $files; do
    sed -e 's://.*$::' -e 's:/\*.*\*/::g' -e 's/"[^"]*"/""/g' "$f" |
        grep -nE "$banned" | sed "s|^|$f:|" || true
done)
if [ -n "$hits" ]; then
    echo "banned functions used (see STYLE.md; use snprintf, explicit lengths, strtol):"
    echo "$hits"
    exit 1
fi
echo "check-banned: $(printf '%s\n' $files | wc -l) files clean"
