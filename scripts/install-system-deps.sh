#!/usr/bin/env bash
# System packages the project needs beyond Python: Chromium (browser tests), PostgreSQL (arena
# tests on PostgreSQL, `occam arena serve --db postgresql+psycopg://...`), Fashion-MNIST (Debian's copy).
# Idempotent: installs only what is missing, runs `apt-get update` at most once, and only as root.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
[ -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || missing+=(dataset-fashion-mnist)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-system-deps: chromium, postgresql and dataset-fashion-mnist are present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing ${missing[*]}; run as root (or: sudo apt-get install -y ${missing[*]})" >&2
  echo "install-system-deps: tests that need them are skipped with a reason" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get here; install ${missing[*]} with your package manager" >&2
  exit 0
fi
echo "install-system-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
