# shellcheck shell=bash
# Shared helpers for infra/bin/*.sh (sourced, not executed).

# shellcheck disable=SC2034  # used by the scripts that source this file
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { printf '[%s] %s\n' "${LOG_TAG:-infra}" "$*"; }
die() { printf '[%s] ERROR: %s\n' "${LOG_TAG:-infra}" "$*" >&2; exit 1; }

# Run as root (directly, or through sudo when we are a normal user).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# apt-get install the given packages; `apt-get update` runs at most once per
# process tree (APT_UPDATED is exported so child scripts see it).
apt_install() {
    [ $# -gt 0 ] || return 0
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${APT_UPDATED:-}" ]; then
        say "apt-get update"
        as_root apt-get update -qq
        export APT_UPDATED=1
    fi
    say "apt-get install $*"
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True if $2 (pid file) names a live process whose command line contains $1;
# guards against a stale pid file whose pid was reused by something else.
pid_alive() {
    local pat=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pat"
}

# pip puts console scripts (uv) in the interpreter's scripts dir or in the
# user scheme's (~/.local/bin); neither is necessarily on PATH (pyenv shims
# need a rehash, fresh CI shells lack ~/.local/bin). Append both.
add_python_bins_to_path() {
    local dirs
    dirs=$(python3 -c 'import os, sysconfig
print(":".join({sysconfig.get_path("scripts"), sysconfig.get_path("scripts", os.name + "_user")}))' 2>/dev/null) || return 0
    export PATH="$PATH:$dirs"
}
