#!/usr/bin/env bash
# Bootstrap, then `applier demo` with the given arguments (local throwaway servers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
if [ -x .venv/bin/applier ]; then
    exec .venv/bin/applier demo "$@"
fi
# No console script yet (editable install pending setup.py): run from the source tree.
exec .venv/bin/python -c 'import sys; from applier.cli import main; sys.argv[0] = "applier"; sys.exit(main())' demo "$@"
