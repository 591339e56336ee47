#!/usr/bin/env bash
# The browser tests drive Debian's chromium (a browser download via `playwright install` is not
# possible offline). Install it when we can do so without asking; otherwise say what is missing.
# With CI=true a missing browser makes the browser tests fail instead of skip.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    SUDO=""
  elif sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "ensure_chromium: /usr/bin/chromium missing; install it with 'sudo apt-get install chromium' to run the browser tests" >&2
    exit 0
  fi
  echo "ensure_chromium: installing Debian's chromium for the browser tests"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
else
  echo "ensure_chromium: no apt-get; install Chromium at /usr/bin/chromium to run the browser tests" >&2
fi
exit 0
