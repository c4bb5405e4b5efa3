#!/usr/bin/env bash
# Proves the code works with scylla-driver, the drop-in fork of cassandra-driver: builds a second
# virtualenv (.venv-scylla) where scylla-driver provides the `cassandra` package, and runs the
# driver-level tests in it against the running local stack (start it with `make up` or
# `.venv/bin/photos-stack up --services cassandra,kafka,redis`).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=$(command -v python3.11 || command -v python3)
[ -x .venv-scylla/bin/python ] || "$python_bin" -m venv .venv-scylla
# every runtime dependency but cassandra-driver, then the project itself without dependencies
deps=$(sed -n '/^install_requires =/,/^$/p' setup.cfg | tail -n +2 | grep -v cassandra-driver | xargs)
.venv-scylla/bin/pip install -q scylla-driver $deps pytest==9.2.0 pytest-asyncio==1.5.0
.venv-scylla/bin/pip install -q --no-deps -e .
if .venv-scylla/bin/pip show cassandra-driver >/dev/null 2>&1; then
  echo "cassandra-driver is installed in .venv-scylla; this check needs scylla-driver alone" >&2
  exit 1
fi
.venv-scylla/bin/python -c 'import cassandra, importlib.metadata as m; print("driver:", "scylla-driver", m.version("scylla-driver"), "->", cassandra.__file__)'
.venv-scylla/bin/python -m pytest -q tests/unit/test_row_classes.py tests/integration/test_cassandra_bridge.py \
  tests/integration/test_migrations.py tests/integration/test_follow_graph.py tests/integration/test_like_counts.py
