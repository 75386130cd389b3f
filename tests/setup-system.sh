#!/usr/bin/env bash
# Best-effort system set-up for the test suite: headless Chromium for the report's browser
# test. Tests that need it skip with a clear reason where it cannot be installed.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the browser test (apt-get)..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium; browser tests will be skipped"
fi
exit 0
