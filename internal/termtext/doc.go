// Package termtext makes text that ferry did not write safe to print on a
// terminal: an error body a registry sent, a header value. Control
// characters (escape sequences, carriage returns, newlines) are shown
// escaped, so such text can neither move the cursor nor start a line of its
// own that looks like ferry's output.
package termtext
