#!/usr/bin/env bash
# Builds the e2e control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager, kubectl) into a cache directory outside the repo.
# The directory name is a hash of this module's pinned versions and sources, so
# the binaries are rebuilt only when those change. Prints the directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${FLUXD_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxd-e2e}
key=$(cd "$here" && cat go.mod go.sum build.sh */main.go | sha256sum | cut -c1-16)
dir=$cache_root/kubebin-$key
bins=(etcd kube-apiserver kube-controller-manager kubectl)
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
echo "building the e2e control plane into $dir (the first build takes several minutes)" >&2
cd "$here"
for b in "${bins[@]}"; do
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dir/$b.tmp" "./$b"
  mv "$dir/$b.tmp" "$dir/$b"
  echo "  built $b in $(( $(date +%s) - start ))s" >&2
done
touch "$dir/.complete"
echo "$dir"
