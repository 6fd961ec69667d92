#!/usr/bin/env bash
# Make a fresh Debian 12 machine able to run zapstream's infra and tests.
# Idempotent; a near no-op (a few seconds) when everything is present.
set -euo pipefail
LOG_TAG=bootstrap
# shellcheck source=infra/bin/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start=$SECONDS

# System packages: one apt-get update + install for whatever is missing.
pkgs=()
command -v java >/dev/null || pkgs+=(default-jdk-headless)
command -v mvn >/dev/null || pkgs+=(maven)
command -v make >/dev/null || pkgs+=(make)
# Media probing and voice-note conversion (zapstream_platform.mediaproc); the package has both tools.
{ command -v ffmpeg && command -v ffprobe; } >/dev/null || pkgs+=(ffmpeg)
# The console's browser tests: Debian's headless Chromium (Playwright's own browser download cannot work here).
command -v chromium >/dev/null || pkgs+=(chromium)
# The console's build (Vite 7 and playwright-core need Node.js 20.19+; Debian 12's own nodejs is 18: with it,
# infra/bin/console.sh says so and skips the console instead of failing).
command -v node >/dev/null || pkgs+=(nodejs npm)
apt_install "${pkgs[@]}"
# Kafka 4 brokers need Java 17+ ("17.0.15" / "1.8.0_x" -> major).
jmajor=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
[ "${jmajor%%.*}" -ge 17 ] 2>/dev/null || die "Java 17+ required, found '${jmajor}' ($(command -v java))"

bash "$ROOT/infra/bin/postgres.sh" install # reuses the apt-get update above (APT_UPDATED)

add_python_bins_to_path
if ! command -v uv >/dev/null; then
    say "pip install uv"
    # Second form: Debian's system python refuses plain pip installs (PEP 668).
    python3 -m pip install -q uv 2>/dev/null ||
        python3 -m pip install -q --user --break-system-packages uv
    hash -r
    command -v uv >/dev/null || die "uv installed but not on PATH"
fi

bash "$ROOT/infra/bin/kafka.sh" jars
bash "$ROOT/infra/bin/s3.sh" jars

say "ok in $((SECONDS - start)) s: java $jmajor, $(mvn -v 2>/dev/null | sed -n 's/\x1b\[[0-9;]*m//g; 1s/^Apache Maven \([^ ]*\).*/maven \1/p'), postgres $(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1), $(ffmpeg -version | sed -n '1s/^ffmpeg version \([^ ]*\).*/ffmpeg \1/p'), $(uv --version), node $(node -v), $(chromium --version 2>/dev/null | cut -d' ' -f1-2)"
