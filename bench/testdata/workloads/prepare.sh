#!/usr/bin/env bash
# prepare.sh TRACE_FILE DEST_DIR: the smoke trace's tree, a tiny Python
# project in a fresh git repository (the shape of the real workloads'
# prepare.sh, without their Debian packages).
set -euo pipefail
dest=${2:?usage: prepare.sh TRACE_FILE DEST_DIR}
rm -rf "$dest"; mkdir -p "$dest/src/demo"
cat > "$dest/src/demo/__init__.py" <<'PY'
def add(a, b):
    return a + b
PY
printf 'demo: a tiny project\n' > "$dest/README"
cd "$dest"
git init -q
git -c user.name=workload -c user.email=workload@localhost add -A
git -c user.name=workload -c user.email=workload@localhost commit -qm "smoke tree"
