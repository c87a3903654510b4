#!/bin/sh
# Rebuilds the web admin and fails when ui/dist differs from the committed
# build (run by CI; the build is deterministic: same sources and lockfile,
# same bytes).
set -eu
cd "$(dirname "$0")"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent >/dev/null
changes=$(git status --porcelain --untracked-files=all -- dist)
if [ -n "$changes" ]; then
  echo "ui/dist is stale: run 'npm run build' in ui/ and commit ui/dist. Differences:" >&2
  echo "$changes" >&2
  exit 1
fi
echo "ui/dist matches the sources"
