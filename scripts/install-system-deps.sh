#!/usr/bin/env bash
# Installs the Debian packages Occam Arena uses, when they are missing and we may (root + apt).
#   dataset-fashion-mnist  the Fashion-MNIST IDX files (/usr/share/datasets/fashion-mnist)
#   chromium               browser tests (Playwright drives /usr/bin/chromium)
#   postgresql             PostgreSQL tests start a private cluster from these binaries
# Idempotent: does nothing when everything is present. Never fails the build: without these,
# the affected tests skip with a visible reason.
set -u
need=()
[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: missing ${need[*]}; install them with your package manager (tests that need them will skip)" >&2
  exit 0
fi
echo "install-system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || true
apt-get install -y -q "${need[@]}" >/dev/null || echo "install-system-deps: apt-get install failed; affected tests will skip" >&2
exit 0
