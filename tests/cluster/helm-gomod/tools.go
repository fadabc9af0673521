//go:build tools

// Package tools pins the helm command built by tests/cluster/helm_build.py.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
