#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from the distribution (Debian: chromium, chromium-driver).
# Used by .ci/run for the web demo's browser test (test/demo/test_demo_browser.py); the test drives this
# browser with selenium and never downloads one. Exits 0 at once when both are already installed.
set -euo pipefail

packages=(chromium chromium-driver)

find_browser() {
    command -v chromium || command -v chromium-browser || command -v google-chrome || true
}
if [ -n "$(find_browser)" ] && command -v chromedriver > /dev/null; then
    echo "Chromium and chromedriver are installed ($("$(find_browser)" --version 2> /dev/null || echo '?'))"
    exit 0
fi

if ! command -v apt-get > /dev/null; then
    echo "ERROR: chromium or chromedriver missing and apt-get not found: install Chromium and its matching" \
        "chromedriver with your system's package manager" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
        sudo=(sudo -n)
    else
        echo "ERROR: chromium or chromedriver missing; installing ${packages[*]} needs root (or password-less sudo)" >&2
        exit 1
    fi
fi
echo "Installing ${packages[*]} with apt-get"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
if [ -z "$(find_browser)" ] || ! command -v chromedriver > /dev/null; then
    echo "ERROR: apt-get installed ${packages[*]} but chromium or chromedriver is still not on PATH" >&2
    exit 1
fi
