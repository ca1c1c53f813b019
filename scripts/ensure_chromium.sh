#!/usr/bin/env bash
# The browser tests (tests/test_web.py, tests/test_serve_structures.py) drive Debian's chromium.
# Run as root, this installs it when it is missing and fails if that does not work, so those
# tests can never be skipped unnoticed; as another user it only says that they will be skipped.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure_chromium: no chromium and not root: the browser tests will be skipped (their" \
       "reason is printed at the end of the run)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: chromium is missing and there is no apt-get to install it" >&2
  exit 1
fi
echo "ensure_chromium: installing Debian's chromium for the browser tests" >&2
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
      >/dev/null) || ! command -v chromium >/dev/null 2>&1; then
  echo "ensure_chromium: could not install chromium (apt-get install -y chromium failed)" >&2
  exit 1
fi
