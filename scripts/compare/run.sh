#!/usr/bin/env bash
# The driver comparison: installs the pinned Python and Node.js drivers under this folder
# (git-ignored), builds this driver's release examples, then runs harness.py.
#   scripts/compare/run.sh [--runs N] [--quick] [--only select1,cloudfetch,inline,rows,columns]
# Needs: a Rust toolchain, Python 3.11 or newer (with venv), Node.js 20 or newer with npm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

for tool in cargo python3 node npm; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found" >&2; exit 1; }
done

# Python: databricks-sql-connector with pyarrow, every package pinned (requirements.txt).
venv="$here/.venv"
if ! cmp -s "$here/requirements.txt" "$venv/installed-requirements.txt" 2>/dev/null; then
    echo "== installing the Python connector into scripts/compare/.venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/installed-requirements.txt"
fi

# Node.js: @databricks/sql at the version of package.json, its tree as in package-lock.json.
# `npm install` (which keeps the lock file's versions) rather than `npm ci`: the driver lists an
# optional Windows package at a version the registry does not have, which `npm ci` refuses.
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.package-lock.json.installed" 2>/dev/null; then
    echo "== installing the Node.js driver into scripts/compare/node_modules"
    (cd "$here" && npm install --no-audit --no-fund --no-save --loglevel=error)
    cp "$here/package-lock.json" "$here/node_modules/.package-lock.json.installed"
fi

echo "== building the mock warehouse and the comparison client (release)"
(cd "$root" && CARGO_INCREMENTAL=0 cargo build --release --quiet \
    --example mock_warehouse --example compare_client)

exec python3 "$here/harness.py" --root "$root" "$@"
