#!/usr/bin/env bash
# Installs what the interop and browser tests need (.ci/run calls this; run
# it by hand too, from anywhere):
#   - a Python venv at tests/interop/.venv (git-ignored) with a pinned
#     `websockets`, for tests/interop_python.rs;
#   - Debian's `chromium`, for tests/chat_browser.rs.
# Idempotent: a second run checks both and changes nothing (about a second).
# Without them the tests skip locally and fail under CI=true.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

WEBSOCKETS_VERSION=17.4
VENV=tests/interop/.venv

say() { printf 'setup-interop: %s\n' "$*"; }

installed() { # package -> 0 when dpkg has it installed
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_updated=0
apt_install() { # packages... (output shown only on failure)
	local log
	log=$(mktemp)
	if [ "$apt_updated" = 0 ]; then
		apt-get -qq update </dev/null >"$log" 2>&1 || { cat "$log"; rm -f "$log"; return 1; }
		apt_updated=1
	fi
	say "apt-get install $*"
	apt-get -qq install -y --no-install-recommends -o Dpkg::Use-Pty=0 "$@" </dev/null >"$log" 2>&1 ||
		{ cat "$log"; rm -f "$log"; return 1; }
	rm -f "$log"
}

# ---- the Python venv with websockets
have_websockets() {
	[ -x "$VENV/bin/python" ] &&
		"$VENV/bin/python" -c "import sys, websockets; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null
}

if have_websockets; then
	say "websockets $WEBSOCKETS_VERSION already in $VENV"
else
	python=$(command -v python3)
	if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
		# Debian's python3 keeps venv's pip bootstrap in a separate package.
		apt_install python3-venv
		python=/usr/bin/python3
	fi
	rm -rf "$VENV"
	say "creating $VENV with $("$python" --version 2>&1)"
	"$python" -m venv "$VENV"
	"$VENV/bin/python" -m pip install -q --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION"
	have_websockets || { say "error: websockets $WEBSOCKETS_VERSION did not install into $VENV"; exit 1; }
	say "installed websockets $WEBSOCKETS_VERSION into $VENV"
fi

# ---- Chromium (headless) for the chat page test
if command -v chromium >/dev/null 2>&1; then
	say "chromium already installed ($(chromium --version 2>/dev/null || echo '?'))"
else
	apt_install chromium
	say "installed $(chromium --version 2>/dev/null || echo chromium)"
fi
