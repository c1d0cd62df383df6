#!/usr/bin/env bash
# Rehearse a fresh machine before you stop: what would `.ci/run` miss on a machine that has only
# what the project's own scripts install? Run it after `scripts/dev test` (or .ci/run) here.
#
#   scripts/fresh-check.sh [BASELINE]
#
# 1. every package of scripts/packages.txt is installed;
# 2. every tool listed there is found on PATH and comes from the package named for it (dpkg -S):
#    a tool that comes from elsewhere (a binary the machine image or a person put in
#    /usr/local/bin) is not what a fresh Debian has;
# 3. with BASELINE, a file of the package names a new machine of this kind comes with (one a line,
#    or the tab-separated "apt NAME VERSION" lists), the packages marked manually installed here
#    that neither the baseline nor packages.txt names: a person installed them, .ci/run will not.
# Exits 1 when 1 or 2 finds anything; 3 only reports (a hand-installed package may be unused).
set -uo pipefail
cd "$(dirname "$0")/.."
baseline=${1:-}
bad=0
say() { printf '%s\n' "$*"; }

while read -r pkg _groups tools _; do
    case "$pkg" in ''|\#*) continue ;; esac
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
        say "MISSING  package $pkg is not installed (scripts/ensure-packages.sh installs it)"; bad=1; continue
    fi
    [ "$tools" = "-" ] && continue
    for tool in ${tools//,/ }; do
        path=$(PATH="$PATH:/usr/sbin:/sbin" command -v "$tool") \
            || { say "MISSING  $tool (from $pkg) is not on PATH"; bad=1; continue; }
        owner=""
        for candidate in "$path" "/usr$path" "${path#/usr}" "$(readlink -f "$path")"; do
            owner=$(dpkg -S "$candidate" 2>/dev/null) && break
        done
        owner=${owner%%:*}
        if [ -z "$owner" ]; then
            say "ELSEWHERE $tool is $path, which no package owns; a fresh machine has $pkg's instead"; bad=1
        elif [ "$owner" != "$pkg" ] && [[ " ${owner//, / } " != *" $pkg "* ]]; then
            say "ELSEWHERE $tool is $path from $owner, not from $pkg as scripts/packages.txt says"; bad=1
        fi
    done
done < scripts/packages.txt

if [ -n "$baseline" ]; then
    declared=$(awk '!/^#/ && NF { print $1 }' scripts/packages.txt)
    known=$(awk -F'\t' 'NF >= 2 && $1 == "apt" { print $2; next } !/^#/ && NF == 1 { print $1 }' "$baseline")
    extra=$(apt-mark showmanual | grep -vxF -f <(printf '%s\n' $declared $known) || true)
    if [ -n "$extra" ]; then
        say "BY HAND  installed by hand here, installed by no project script (a fresh machine lacks them):"
        printf '           %s\n' $extra
    else
        say "BY HAND  none: every manually installed package is in the baseline or scripts/packages.txt"
    fi
fi
[ "$bad" = 0 ] && say "ok: every package and tool of scripts/packages.txt is there, from its own package"
exit "$bad"
