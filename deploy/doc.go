// Package deploy holds no code: its tests check the container build and the
// compose fleet of the directory (deploy/docker, deploy/compose.yaml,
// deploy/compose/nginx.conf) statically, without a Docker engine.
//
// It is its own module, outside go.work, so the Dockerfile parser and the
// compose-spec loader stay out of the services' dependency graphs:
//
//	cd deploy && GOWORK=off go test -count=1 ./...
package deploy
