// Package layout holds tests of the source tree's shape: rules a reviewer
// would otherwise have to check by eye on every change.
package layout

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// maxFuncLines bounds a function in internal/: past it a reader can no
// longer hold the function in their head, and it is time to split it.
const maxFuncLines = 100

// root is the module's root, relative to this package's directory.
const root = "../.."

const module = "github.com/godwit-dev/godwit/"

// goFiles parses every non-test Go file under dir.
func goFiles(t *testing.T, dir string) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	files := map[string]*ast.File{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files[path] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no Go files under %s", dir)
	}
	return fset, files
}

func TestNoLongFunctions(t *testing.T) {
	fset, files := goFiles(t, "internal")
	for path, f := range files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if lines > maxFuncLines {
				t.Errorf("%s: %s is %d lines (limit %d): split it", path, fn.Name.Name, lines, maxFuncLines)
			}
		}
	}
}

// cmdMayImport are the packages of ours cmd/godwit may use: the command
// parses flags and environment (platform/config) into app's configuration and
// runs it; app builds everything. The load generator is a client, not part of
// the server, and so is api/client, the typed client generated from the API
// document, which the --target modes of verify and trace use to call a
// running server (it imports nothing of ours).
var cmdMayImport = []string{
	"internal/app",
	"internal/platform/config",
	"internal/loadgen",
	"api/client",
}

func TestCommandImportsOnlyApp(t *testing.T) {
	_, files := goFiles(t, "cmd/godwit")
	for path, f := range files {
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			rel, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			if !slices.Contains(cmdMayImport, rel) {
				t.Errorf("%s imports %s: construction belongs in internal/app (allowed: %v)", path, rel, cmdMayImport)
			}
		}
	}
}

// handBuiltRequests are the net/http functions that build or send a request
// by hand.
var handBuiltRequests = []string{"NewRequest", "NewRequestWithContext", "Get", "Head", "Post", "PostForm"}

// mayBuildRequests are the functions that may still call them: requests to
// services other than Godwit's API.
var mayBuildRequests = map[string]bool{
	"cmd/godwit/trace.go:getJSON": true, // Jaeger's query service
}

// TestAPICallersUseTheGeneratedClient keeps the load generator and the
// command's --target modes on api/client, the client generated from the API
// document: a request built by hand could drift from the contract unnoticed.
func TestAPICallersUseTheGeneratedClient(t *testing.T) {
	for _, dir := range []string{"internal/loadgen", "cmd/godwit"} {
		_, files := goFiles(t, dir)
		usesClient := false
		for path, f := range files {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				t.Fatal(err)
			}
			rel = filepath.ToSlash(rel)
			httpName := ""
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				switch p {
				case module + "api/client":
					usesClient = true
				case "net/http":
					httpName = "http"
					if imp.Name != nil {
						httpName = imp.Name.Name
					}
				}
			}
			if httpName == "" {
				continue
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil || mayBuildRequests[rel+":"+fn.Name.Name] {
					continue
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					sel, ok := n.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == httpName && slices.Contains(handBuiltRequests, sel.Sel.Name) {
						t.Errorf("%s: %s calls http.%s: call the Godwit API through api/client (github.com/godwit-dev/godwit/api/client)", rel, fn.Name.Name, sel.Sel.Name)
					}
					return true
				})
			}
		}
		if !usesClient {
			t.Errorf("%s does not import api/client: its calls to the Godwit API must go through the generated client", dir)
		}
	}
}
