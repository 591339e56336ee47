#!/usr/bin/env bash
# Put MathJax 3 under _vendor/mathjax so the static book typesets its math with no CDN
# (readers offline, and the browser tests, which forbid requests to other hosts).
# Fetched from the npm registry once; _vendor/ is git-ignored (and not _static/, whose scripts Jupyter Book adds to every page). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.2.2
DEST=_vendor/mathjax
if [ -f "$DEST/tex-mml-chtml.js" ] && [ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "vendor_mathjax: npm is needed to fetch MathJax $VERSION" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "mathjax@$VERSION" --silent >/dev/null && tar xzf "mathjax-$VERSION.tgz")
rm -rf "$DEST" && mkdir -p "$DEST/output/chtml/fonts" "$DEST/input/tex"
cp "$tmp/package/es5/tex-mml-chtml.js" "$DEST/"
cp -r "$tmp/package/es5/output/chtml/fonts/woff-v2" "$DEST/output/chtml/fonts/"
cp -r "$tmp/package/es5/input/tex/extensions" "$DEST/input/tex/"
cp -r "$tmp/package/es5/ui" "$tmp/package/es5/a11y" "$DEST/"
echo "$VERSION" > "$DEST/VERSION"
echo "vendor_mathjax: MathJax $VERSION in $DEST ($(du -sh "$DEST" | cut -f1))"
