package apitest_test

import (
	"testing"

	"github.com/godwit-dev/godwit/api/apitest"
)

// TestDocumentIsValid checks the document against the OpenAPI 3.1
// specification, every example against its schema included.
func TestDocumentIsValid(t *testing.T) {
	if _, err := apitest.Load(); err != nil {
		t.Fatal(err)
	}
}
