// Package kube turns manifest files read from git into Kubernetes objects and
// keeps a cluster in step with them: Parse reads the files, Cluster.Sync
// applies them with server-side apply and prunes what left git.
//
// It is the only package (with its sub-packages) that imports client-go.
// Everything it hands out uses the dependency-free types of kube/resource.
//
// # Ownership
//
// Every object Sync applies carries the label GCMarkLabel whose value is the
// caller's sync-set mark (see GCMark): a short hash of the cluster name, the
// repository URL, the branch and the paths. Garbage collection only ever
// considers objects that carry exactly this mark, and among them only those
// that fluxd's own field manager applied (managedFields has its Apply entry)
// and that no other object controls. So neither an object whose label a
// controller copied (the endpoints controller copies a Service's labels) nor
// one applied by another fluxd from another repository is ever deleted.
//
// # Policies
//
// IgnoreAnnotation (or Flux v1's LegacyIgnoreAnnotation) "true", in git or
// on the live object, means never applied nor pruned; "sync_only" means
// applied but never pruned.
//
// Sync also records ChecksumAnnotation, a hash of the object as it was
// applied. It is how a re-sync sees, from one metadata LIST per kind, that an
// object needs no write.
package kube

const (
	// GCMarkLabel is the label that ties an object to the sync set (cluster,
	// repository, branch, paths) that applied it. Its value is GCMark's.
	GCMarkLabel = "fluxd.io/sync-gc-mark"

	// ChecksumAnnotation holds a hash of the object fluxd last applied
	// (with GCMarkLabel, without this annotation) and of the field
	// manager. An unchanged manifest gives an unchanged checksum.
	ChecksumAnnotation = "fluxd.io/sync-checksum"

	// IgnoreAnnotation set to "true" on an object (in git or in the
	// cluster) makes fluxd never apply nor prune it; "sync_only" makes
	// fluxd apply it but never prune it.
	IgnoreAnnotation = "fluxcd.io/ignore"
	// LegacyIgnoreAnnotation is Flux v1's older spelling of
	// IgnoreAnnotation, read too.
	LegacyIgnoreAnnotation = "flux.weave.works/ignore"
)
