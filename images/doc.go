// Package images will scan container registries for the images the
// workloads use, into a cache (memcached or embedded), for list-images and
// automation. It is the only package that uses the registry client.
package images
