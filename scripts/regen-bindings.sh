#!/usr/bin/env bash
# Regenerates lws-sys/src/bindings.rs for the vendored default configuration
# (needs libclang: apt-get install libclang-dev). The test that checks the
# committed file is the generator, so there is one bindgen setup only.
set -euo pipefail
cd "$(dirname "$0")/.."
LWS_SYS_BLESS=1 LWS_SYS_REQUIRE_BINDGEN=1 cargo test -p lws-sys --test bindings_current -- --nocapture
