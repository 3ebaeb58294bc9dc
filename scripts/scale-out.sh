#!/usr/bin/env bash
# The scale-out deployment of docs/SCALING.md on loopback: Debian's
# redis-server and nginx (installed by scripts/setup-scale.sh if missing),
# three examples/chat processes with the Redis backplane, nginx proxying
# WebSocket upgrades to them round robin. Every process is a child of
# examples/scale_out, on 127.0.0.1, killed by PID when it ends.
#
# usage: scripts/scale-out.sh            # up until Ctrl-C; prints the URLs
#        scripts/scale-out.sh --bench [--clients N] [--messages M]
#                                        # fan-out through nginx vs direct
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup-scale.sh
cargo build --release --example chat --example scale_out
exec "${CARGO_TARGET_DIR:-target}/release/examples/scale_out" "$@"
