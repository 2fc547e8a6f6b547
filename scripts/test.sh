#!/usr/bin/env bash
# Lint and test: bootstrap, ruff, then pytest with the given arguments.
# The exit code is pytest's (5, "no tests collected", stays a failure); if tests pass but
# ruff found problems the script still fails, so lint cannot rot unnoticed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh || exit $?

lint=0
.venv/bin/ruff check --quiet applier tests benchmarks || lint=$?

rc=0
.venv/bin/python -m pytest -q "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
elif [ "$rc" -eq 0 ] && [ "$lint" -ne 0 ]; then
    echo "test.sh: tests passed but ruff check failed" >&2
    rc=1
fi
exit "$rc"
