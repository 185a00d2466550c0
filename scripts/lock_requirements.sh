#!/usr/bin/env bash
# Regenerate requirements.lock from requirements.txt (make venv, CI) and requirements-app.lock
# from requirements-app.txt (deploy/app.Dockerfile): every transitive package pinned, with the
# hashes of its PyPI files, for Python 3.11 on x86_64 Linux. The app lock starts from the full
# lock's pins, so both give a package the same version (scripts/check_deps.py checks it).
# Existing pins in requirements.lock are kept (uv prefers them); pass --upgrade-package NAME
# (or --upgrade) to move them. Needs the network (PyPI); uv runs from its own venv under var/
# so the project venv does not change. scripts/check_deps.py checks the result in `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
TOOLS=var/lock-tools
if [[ ! -x $TOOLS/bin/uv ]] || [[ $($TOOLS/bin/uv --version) != "uv $UV_VERSION"* ]]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet "uv==$UV_VERSION"
fi
compile() {  # compile SOURCE LOCK [uv options...]
  local source=$1 lock=$2
  shift 2
  "$TOOLS/bin/uv" pip compile "$source" \
    --generate-hashes \
    --python-version 3.11 \
    --python-platform x86_64-unknown-linux-gnu \
    --custom-compile-command "bash scripts/lock_requirements.sh" \
    --quiet \
    --output-file "$lock" \
    "$@"
}
compile requirements.txt requirements.lock "$@"
cp requirements.lock requirements-app.lock.tmp  # uv keeps the pins it finds in the output file
mv requirements-app.lock.tmp requirements-app.lock
compile requirements-app.txt requirements-app.lock
