package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/godwit-dev/godwit/api/client"
)

// adminAPI is the typed client generated from the API document (api/client)
// for a running server, every call authorised with an admin token. The
// --target modes of verify and trace and loadgen's fault settings use it.
func adminAPI(target, token string, hc *http.Client) (*client.ClientWithResponses, error) {
	c, err := client.NewClientWithResponses(strings.TrimRight(target, "/"), client.WithHTTPClient(hc),
		client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Accept", "application/json")
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("--target: %w", err)
	}
	return c, nil
}

// answerError describes an answer other than the one expected: the problem's
// status, code and detail when it is a problem document, else the status and
// the start of the body.
func answerError(what string, status int, p *client.Problem, body []byte) error {
	if p != nil && p.Code != "" {
		return fmt.Errorf("%s answered %d %s: %s", what, status, p.Code, p.Detail)
	}
	return fmt.Errorf("%s answered %d: %.300s", what, status, strings.TrimSpace(string(body)))
}
