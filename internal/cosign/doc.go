// Package cosign checks publisher signatures of container images offline,
// in the two forms cosign writes them: the classic signature tag
// sha256-<hex>.sig (simple-signing payloads with their signature in an
// annotation) and the OCI 1.1 referrer holding a Sigstore bundle
// (application/vnd.dev.sigstore.bundle.v0.3+json).
//
// A Policy names what is trusted (public keys; certificate identities
// checked against a Sigstore trusted root); a Source fetches an image's
// signature artifacts, from a registry at export or from a bundle at
// import, with bounded sizes. Verify never reaches the network on its own:
// no Rekor, Fulcio or timestamp authority is contacted. What is and is not
// checked is listed in docs/security.md, "Publisher signatures".
package cosign
