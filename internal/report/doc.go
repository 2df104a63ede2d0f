// Package report holds the documents that ferry export, import, inspect
// and verify print with --json: the one source of their schema, described
// field by field in docs/json.md. Each document starts with a Header
// (schemaVersion, command, ok) and, when the run failed, an Error.
//
// A field is never renamed or given another meaning without raising
// SchemaVersion; fields may be added.
package report
