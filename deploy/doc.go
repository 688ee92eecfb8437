// Package deploy holds keymint's deployment files: the container image
// (Dockerfile), Kubernetes manifests (kustomize base, overlays and sidecar
// examples) and a compose file for a full local stack. It has no Go code of
// its own; its tests decode every manifest strictly into the Kubernetes API
// types, build every kustomization, and check the proxy configurations, so a
// typo or a weakened security setting fails `go test` instead of a rollout.
package deploy
