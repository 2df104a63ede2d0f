// Package scan finds the container images that deployment manifests name:
// Kubernetes objects (every workload kind, their init and ephemeral
// containers, List objects), the output of `helm template` and
// `kustomize build`, and docker-compose files. It parses them with a YAML
// library (JSON is YAML too), never with regular expressions, and
// normalises every reference with bundle.ParseReference, so what it prints
// is what `ferry export` would record.
//
// Paths reads files, directories and standard input; Read reads one
// stream; Refs turns what they found into a sorted list without
// duplicates. Pin resolves each tag to the digest its registry holds now,
// making a lock list for reproducible exports.
//
// Every value that is not a valid reference is a *Problem naming the file,
// line, document and path (spec.template.spec.containers[1].image); Paths
// and Read return all of them at once in an *Error. See docs/user-guide.md,
// section "ferry images scan".
package scan
