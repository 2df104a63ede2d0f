// Package mirrorconfig writes what a cluster needs to pull the images of an
// import from the mirror registry instead of their source registries:
// containerd hosts.toml files, a CRI-O/podman registries.conf drop-in,
// OpenShift ImageDigestMirrorSet and ImageTagMirrorSet objects, an RKE2/k3s
// registries.yaml, a kustomize images list and a JSON mapping of every image.
// It is used by `ferry import --mirror-config-out DIR` (docs/user-guide.md,
// section "Configure the cluster after import").
//
// Every file is generated from the import's result, without a TOML or YAML
// library: strings are written JSON-quoted, which is a valid TOML basic
// string and a valid YAML double-quoted scalar, so the binary stays small.
// The tests read every file back with real parsers for its format.
package mirrorconfig
