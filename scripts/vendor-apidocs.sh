#!/usr/bin/env bash
# Fetches the API reference renderer served at GET /docs (swagger-ui-dist, from the npm
# registry) into web/vendor/swagger-ui-dist and checks it against the recorded sha256 sums.
#
#   scripts/vendor-apidocs.sh            re-fetch the pinned version; fail if any file differs
#   scripts/vendor-apidocs.sh 5.36.0     move to another version: fetch it and record new sums
#
# `npm pack` checks the tarball against the registry's integrity hash; the sums in
# web/vendor/swagger-ui-dist/SHA256SUMS then pin the files we embed, and web's
# TestVendoredRendererIsPinned fails if an embedded file no longer matches them. After moving
# to another version, update the version and sums in web/vendor/README.md, run
# `go test ./web/...` (the browser test opens /docs under the strict CSP) and say why in the
# commit.
set -euo pipefail

pkg=swagger-ui-dist
files=(swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE)
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/web/vendor/$pkg"
pinned=$(cat "$dest/VERSION")
version=${1:-$pinned}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
tar -xzf "$tmp/$pkg-$version.tgz" -C "$tmp"

if [ "$version" = "$pinned" ]; then
  # The pinned version: what the registry serves must be byte for byte what we recorded.
  (cd "$tmp/package" && sha256sum --check --strict "$dest/SHA256SUMS")
  for f in "${files[@]}"; do
    cp "$tmp/package/$f" "$dest/$f"
  done
  (cd "$dest" && sha256sum --check --strict --quiet SHA256SUMS)
  echo "$pkg $version: the registry's files match web/vendor/$pkg/SHA256SUMS"
else
  for f in "${files[@]}"; do
    cp "$tmp/package/$f" "$dest/$f"
  done
  (cd "$dest" && sha256sum "${files[@]}" >SHA256SUMS)
  echo "$version" >"$dest/VERSION"
  echo "$pkg moved from $pinned to $version; new sums:"
  cat "$dest/SHA256SUMS"
  echo "now update web/vendor/README.md and run go test ./web/..."
fi
