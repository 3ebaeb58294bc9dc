#!/usr/bin/env bash
# Installs what the scale-out test and scripts/scale-out.sh need: Debian's
# redis-server and nginx. Idempotent; the system services are never used
# (the test starts its own instances on 127.0.0.1 in a temp dir).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
missing=()
for pkg in redis-server nginx; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" = 0 ]; then
	echo "setup-scale: redis-server $(dpkg-query -W -f='${Version}' redis-server)," \
		"nginx $(dpkg-query -W -f='${Version}' nginx) already installed"
	exit 0
fi
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
echo "setup-scale: installing ${missing[*]}"
$sudo apt-get -qq update </dev/null
$sudo apt-get -qq install -y --no-install-recommends "${missing[@]}" </dev/null
echo "setup-scale: installed redis-server $(dpkg-query -W -f='${Version}' redis-server)," \
	"nginx $(dpkg-query -W -f='${Version}' nginx)"
