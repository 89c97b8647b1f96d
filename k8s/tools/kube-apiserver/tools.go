//go:build tools

// Package tools pins the kube-apiserver that the chart test in
// github.com/liqstream/liqstream/k8s starts: k8s/internal/kubeenv builds it
// (into ~/.cache/liqstream, version stamp taken from go.mod), as by hand
// from this directory with:
//
//	GOWORK=off go build -o kube-apiserver \
//	  -ldflags "-X k8s.io/component-base/version.gitVersion=v1.34.4 \
//	            -X k8s.io/component-base/version.gitMajor=1 \
//	            -X k8s.io/component-base/version.gitMinor=34" \
//	  k8s.io/kubernetes/cmd/kube-apiserver
//
// go.mod requires k8s.io/kubernetes and replaces each of its 31 staging
// modules (k8s.io/api, ...) with the matching v0.x release, since its own
// replaces (./staging/src/...) do not apply to a module that requires it.
// Without the -X stamp the server reports v0.0.0-master.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
