#!/usr/bin/env bash
#
# Deletes the kind cluster of scripts/kind-up.sh, with everything in it (the dev PostgreSQL's
# data too), and its tokens file. The secret files in infra/k8s/overlays/dev/secrets/ stay:
# the next scripts/kind-up.sh reuses them on its new cluster (scripts/k8s-secrets.sh --force
# writes new ones). Deleting a cluster that does not exist is not an error.
#
# Usage: scripts/kind-down.sh
# Environment: CONVENE_KIND_CLUSTER (convene).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER="${CONVENE_KIND_CLUSTER:-convene}"

convene_have kind || convene_die "kind is not installed"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  convene_log "kind delete cluster --name $CLUSTER"
  kind delete cluster --name "$CLUSTER"
else
  convene_log "no kind cluster $CLUSTER"
fi
rm -f "$CONVENE_DEV_DIR/kind/tokens.env"
