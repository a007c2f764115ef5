// Package api holds the JSON types of fluxd's HTTP API exactly as they
// travel on the wire, so that Flux v1's fluxctl works against fluxd
// unchanged (see FLUX-V1-WIRE.md), plus the types of fluxd's own routes
// under /v12/.
//
// Keys, the fields that are always present and those omitted when empty,
// and null versus [] are part of the contract: change them only together
// with the golden tests in this package.
//
// The package depends only on the standard library, kube/resource and
// notes, so that the packages implementing the server's dependencies
// (jobs, images, the sync loop's adapters) can build these values and
// classify their errors (Error, MissingError, UserError, ServerError)
// without importing the server.
package api
