// Package doctest runs the shell commands of README.md, docs/operations.md and docs/api.md
// against a fresh server, so that the documents an operator or integrator follows cannot
// drift from the binary. It has no non-test code; docs/development.md ("Runnable
// documentation") says how to write a block it can run, and how to mark one it cannot.
package doctest
