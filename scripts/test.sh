#!/usr/bin/env bash
# Runs every test (as root: containers need it). The end-to-end tests drive
# the built binaries, so the workspace is built first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
