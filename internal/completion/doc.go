// Package completion is ferry's shell completion: the scripts that
// `ferry completion bash|zsh|fish` prints, and the answers the ferry binary
// gives them.
//
// The scripts run the command line typed so far, the word at the cursor
// last (empty after a space), with --generate-bash-completion (urfave/cli's
// name for such a request) appended, and offer what it prints. Unlike
// urfave/cli's scripts they always send the word at the cursor, so that
// "--to " (a flag's value next) and "--to" (a flag being typed) differ.
// The answers come from Respond, which reads only the CLI definition (the
// commands and flags of the *cli.App) and the words given; it never runs a
// command. urfave/cli's own responder is not used: it reads os.Args
// instead of the arguments the app was given, and a request that holds "--"
// (a word typed before the cursor) is not recognised as a request at all,
// so the command itself would run. Nothing is printed when a file name is
// expected: the scripts then fall back to completing file names.
package completion
