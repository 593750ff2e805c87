#!/usr/bin/env bash
# Install the two npm tools the lint tests compare against, pinned, into a
# cache (a fresh CI machine gets them here; nothing global is touched):
# squawk (npm squawk-cli), the PostgreSQL migration linter whose rule ids
# lint uses, and Microsoft's SARIF Multitool, which validates
# `lint --format sarif`. Idempotent. Prints two lines on stdout:
#   squawk=/path/to/squawk
#   sarif=/path/to/sarif-multitool
#
#   LINT_TOOLS_DIR   where to keep them (default ~/.cache/schemagate-lint-tools)
set -euo pipefail

SQUAWK_VERSION=2.66.0
SARIF_VERSION=5.7.0
dir="${LINT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/schemagate-lint-tools}"
squawk="$dir/node_modules/.bin/squawk"
sarif="$dir/node_modules/.bin/sarif-multitool"

have() {
	[[ -x "$squawk" && -x "$sarif" ]] &&
		"$squawk" --version 2>/dev/null | grep -qx "squawk $SQUAWK_VERSION"
}

if ! have; then
	command -v npm >/dev/null 2>&1 || { echo "lint-tools: npm is needed (tests/deps.sh installs it)" >&2; exit 1; }
	mkdir -p "$dir"
	echo "lint-tools: installing squawk-cli@$SQUAWK_VERSION and @microsoft/sarif-multitool@$SARIF_VERSION into $dir" >&2
	npm install --silent --no-audit --no-fund --prefix "$dir" \
		"squawk-cli@$SQUAWK_VERSION" "@microsoft/sarif-multitool@$SARIF_VERSION" >&2
	# the Multitool's own postinstall only marks its binary executable;
	# npm may not run it
	find "$dir/node_modules/@microsoft" -name Sarif.Multitool -type f -exec chmod u+x {} + 2>/dev/null || true
	have || { echo "lint-tools: squawk $SQUAWK_VERSION or the SARIF Multitool did not install" >&2; exit 1; }
fi
echo "squawk=$squawk"
echo "sarif=$sarif"
