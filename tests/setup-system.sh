#!/usr/bin/env bash
# Best-effort system set-up for the test suite: headless Chromium for the browser tests and
# Graphviz `dot` for the pipeline pages' DAG. Tests that need Chromium fail with the reason
# where it cannot be installed; without `dot` the pages list the DAG's nodes instead of drawing it.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} for the browser tests (apt-get)..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
    || echo "could not install ${missing[*]}; the browser tests will fail and say so"
fi
exit 0
