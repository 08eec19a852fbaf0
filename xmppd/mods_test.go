package xmppd

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestModulesDoNotImportEachOther holds the module model (server's package
// doc): a module under xmppd/mod reaches another only through the server
// (state, typed events, shared rules such as Contacts), and keeps no
// mutable state in package variables, where two servers in one process
// would share it. Test files may import other modules to set up a case.
func TestModulesDoNotImportEachOther(t *testing.T) {
	const modPath = "github.com/hearthchat/hearth/xmppd/mod/"
	dirs, err := os.ReadDir("mod")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, dir := range dirs {
		if !dir.IsDir() || dir.Name() == "internal" {
			continue
		}
		files, _ := filepath.Glob(filepath.Join("mod", dir.Name(), "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			checked++
			file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range file.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if strings.HasPrefix(p, modPath) && !strings.HasPrefix(p, modPath+"internal/") {
					t.Errorf("%s imports %s: modules talk through the server", f, p)
				}
			}
			for _, decl := range file.Decls {
				g, ok := decl.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, spec := range g.Specs {
					if v := spec.(*ast.ValueSpec); v.Type != nil && mutable(v.Type) {
						t.Errorf("%s: package variable %s of type %s: keep module state on the server (server.State)",
							f, v.Names[0].Name, types(v.Type))
					} else if v.Type == nil {
						for _, val := range v.Values {
							if c, ok := val.(*ast.CompositeLit); ok && c.Type != nil && mutable(c.Type) {
								t.Errorf("%s: package variable %s is a %s: keep module state on the server (server.State)",
									f, v.Names[0].Name, types(c.Type))
							}
						}
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: run from the xmppd directory", checked)
	}
}

// mutable reports whether a package variable of type e is state: maps,
// slices of functions (hook lists), mutexes and atomics.
func mutable(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.MapType:
		return true
	case *ast.ArrayType:
		_, fn := e.Elt.(*ast.FuncType)
		return fn
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			return x.Name == "sync" || x.Name == "atomic"
		}
	}
	return false
}

func types(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.MapType:
		return "map"
	case *ast.ArrayType:
		return "slice"
	case *ast.SelectorExpr:
		return e.X.(*ast.Ident).Name + "." + e.Sel.Name
	}
	return "?"
}
