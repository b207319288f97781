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
// the server.
var cmdMayImport = []string{
	"internal/app",
	"internal/platform/config",
	"internal/loadgen",
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
