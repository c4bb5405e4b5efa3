#!/usr/bin/env bash
# Installs whatever this machine lacks to run and test the project, and nothing twice:
# Debian packages (JDK 17, Maven, Redis, venv support), then the project's virtualenv (.venv).
# The Cassandra and Kafka jars are fetched from Maven Central by `photos-stack fetch`.
# `--bench` also installs what only the benchmarks need (libvips for the media comparison).
set -euo pipefail
extras="dev"
bench=0
[ "${1:-}" = "--bench" ] && { bench=1; extras="dev,bench"; }
cd "$(dirname "$0")/.."

apt_missing=()
[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ] || apt_missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || apt_missing+=(maven)
command -v redis-server >/dev/null 2>&1 || apt_missing+=(redis-server)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_missing+=(python3-venv)
if [ "$bench" = 1 ] && ! ldconfig -p | grep -q libvips.so.42; then apt_missing+=(libvips42); fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${apt_missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

python_bin=$(command -v python3.11 || command -v python3)
"$python_bin" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "Python 3.11 or newer is needed" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv

# reinstall only when the declared dependencies changed
stamp=.venv/.installed-$extras-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "installing Python packages into .venv"
  log=.venv/pip-install.log
  if ! { .venv/bin/pip install --upgrade pip && .venv/bin/pip install -e ".[$extras]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "pip install failed; the whole log is in $log" >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
