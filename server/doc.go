// Package server will serve fluxd's HTTP API, wire-compatible with Flux v1's
// daemon API, and /metrics.
package server
