// Package images holds the types fluxd uses for container images found in
// registries: Info (what one tag points at), Repository (what a scan of one
// repository found) and the errors a registry read can end in. It imports
// nothing but the standard library, so the API server and the automation
// loop can use these types without the registry client.
//
// The mechanisms live in the sub-packages:
//
//   - images/registry reads registries (go-containerregistry) within a
//     per-host rate limit that backs off on 429s;
//   - images/cache stores what was read, in memcached or in an embedded,
//     bytes-bounded LRU;
//   - images/scan refreshes the watched repositories on an adaptive
//     interval and answers Images(repo) from the cache;
//   - images/filter parses tag filters (glob:, semver:, regexp:) and orders
//     images newest first, the one place that does.
package images
