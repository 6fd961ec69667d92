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

# Resolve a Maven project's runtime jars ($2 = pom) into $3, cached by the pom's hash.
# Resolution goes to a temp dir that is swapped in, so an interrupted run never
# leaves a half-filled lib dir that looks valid. $1 names it in messages.
resolve_jars() {
    local label=$1 pom=$2 lib=$3 want tmp
    want=$(sha256sum "$pom" | cut -d' ' -f1)
    if [ -f "$lib/.stamp" ] && [ "$(cat "$lib/.stamp")" = "$want" ]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (run infra/bin/bootstrap.sh)"
    say "resolving $label jars with Maven -> ${lib#"$ROOT"/}"
    mkdir -p "${lib%/*}"
    rm -rf "$lib".tmp.*
    tmp=$lib.tmp.$$
    # Output is kept only for failures (Debian's mvn 3.8 emits stray ANSI
    # escapes even with -q -B).
    if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$lib.tmp.log" 2>&1; then
        cat "$lib.tmp.log" >&2
        die "Maven dependency resolution failed"
    fi
    rm -f "$lib.tmp.log"
    echo "$want" >"$tmp/.stamp"
    rm -rf "$lib"
    mv "$tmp" "$lib"
}

# Wait until the server is running ($1: a function), accepts connections on
# port $2 and its log $3 has a line matching $4; give up after $5 s.
wait_for_log() {
    local running_fn=$1 port=$2 log=$3 pattern=$4 timeout=$5 start=$SECONDS
    while :; do
        "$running_fn" || { tail -n 40 "$log" >&2 || true; die "not running"; }
        if port_open "$port" && grep -q "$pattern" "$log"; then
            say "ready after $((SECONDS - start)) s"
            return 0
        fi
        if [ $((SECONDS - start)) -ge "$timeout" ]; then
            tail -n 40 "$log" >&2 || true
            die "not ready after ${timeout} s (log: $log)"
        fi
        sleep 0.25
    done
}

# Stop the server whose pid file is $2 ($1: its running function): SIGTERM,
# then SIGKILL after $3 s. Idempotent.
stop_server() {
    local running_fn=$1 pidfile=$2 grace=$3 pid i
    if ! "$running_fn"; then
        rm -f "$pidfile"
        say "not running"
        return 0
    fi
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for ((i = 0; i < grace * 4; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "no exit after $grace s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "stopped"
}

# Start "$@" detached, in its own session (a caller's Ctrl-C or CI job teardown does not kill
# it), with its pid in $1 and its output in $2; returns once the pid file is written.
start_detached() {
    local pidfile=$1 log=$2
    shift 2
    # The inner shell records its own pid, then becomes the server.
    # shellcheck disable=SC2016  # $$ is for the inner shell
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >"$log" 2>&1 &
    for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$pidfile" ] && break; sleep 0.1; done
}

# Broker settings both the dev node (kafka.sh) and the 3-broker cluster (kafka-cluster.sh) use.
kafka_common_config() {
    cat <<'CONF'
# Topics are created explicitly by the application; typos must fail loudly.
auto.create.topics.enable=false
num.partitions=1
# No point delaying the first rebalance when tests start consumers one by one.
group.initial.rebalance.delay.ms=0
# Runners detect a dead peer within RUNNER_SESSION_TIMEOUT_MS (1.5 s by default) so that
# sessions fail over in under 2 s; the broker's default floor (6 s) would refuse that.
group.min.session.timeout.ms=500
# On a busy 2-core machine a GC pause or CPU starvation can miss a few heartbeats; the
# default 9 s would fence a broker mid-test. A SIGKILLed broker is still noticed at once
# because its TCP connections drop.
broker.session.timeout.ms=30000
broker.heartbeat.interval.ms=2000
CONF
}

# Kafka 4 logs via log4j2. Root at WARN keeps server.log small; the KafkaRaftServer logger
# stays at INFO because 'wait' looks for its "Kafka Server started" line.
kafka_log4j2() {
    cat >"$1" <<CONF
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${KAFKA_LOG_LEVEL:-WARN}
rootLogger.appenderRef.out.ref = STDOUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
CONF
}
