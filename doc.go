// Package fluxd is the root of fluxd and fluxctl: a git-native GitOps daemon
// for Kubernetes and its CLI. The root holds only the layering test; the code
// lives in cmd, gitstate, notes, sync, kube, images, server and e2e.
package fluxd
