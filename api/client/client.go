// Package client is a typed Go client for the Godwit API, generated from
// api/openapi.yaml by oapi-codegen (pinned in go.mod). Every schema of the
// document is a type here and every operation a method, named by its
// operationId: ClientWithResponses.GetMemberWithResponse returns the decoded
// Member (JSON200) or the problem (ApplicationproblemJSONDefault).
//
// Regenerate with `go generate ./api/client` after changing the document;
// TestClientIsCurrent fails while client.gen.go is stale.
package client

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../openapi.yaml
