// Package benchset generates the image sets ferry's benchmark moves: real
// registry content, deterministic from a seed, pushed to a registry over
// plain HTTP.
//
// Layers are gzip tar streams of real files found on the machine (shared
// libraries, /usr/share, toolchains), so their compressibility is what
// real images have. A sized set (Spec.Size) looks like a company registry:
// a few OS base layers shared by most images, language runtimes shared by
// groups of applications, several versions of each application whose top
// layers differ in a few files, multi-platform indexes (amd64 and arm64
// with different layers), Docker v2 and OCI media types, two namespaces and
// a mirrored repository holding the same images as its origin. A tiny set
// (Spec.Tiny) is many one-layer images of a few KiB, to measure the cost
// of each image rather than of each byte.
//
// The same seed and the same files on the machine give byte-identical
// blobs and manifests, so two runs push the same digests. The images of a
// tiny set do not depend on its size: the first n images of a set of 1,000
// are the set of n.
package benchset
