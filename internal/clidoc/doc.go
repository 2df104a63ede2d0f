// Package clidoc renders the reference of a urfave/cli application as
// Markdown (docs/cli.md): every visible command with its usage line,
// description and options. The output depends only on the definition, in
// its order, so a test can compare it with the committed file
// (cmd/ferry's TestCLIReferenceUpToDate; regenerate with `make docs`).
package clidoc
