// Package api holds Godwit's OpenAPI document, embedded so the server can serve
// it and a test can hold it to the route table.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document describing every /v1 route.
//
//go:embed openapi.yaml
var OpenAPI []byte
