package doctest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository root (tests run in docs/doctest).
var root = filepath.Join("..", "..")

// document is a file whose shell blocks are run.
type document struct {
	file string // relative to root
	// session runs the blocks as one terminal session, the way a reader pastes a walk-through
	// in order: each block starts with the shell variables the blocks before it set.
	session bool
}

// documents are the files whose shell blocks are run.
var documents = []document{
	{file: "README.md"},
	{file: "docs/operations.md"},
	{file: "docs/api.md", session: true},
}

// block is one fenced code block of a Markdown document.
type block struct {
	file string // relative to root
	line int    // 1-based line of the opening fence
	lang string // the fence's info string, e.g. "sh"
	text string // the lines between the fences, each ending in "\n"
	// directive is what a `<!-- doc-test: … -->` comment right before the fence says:
	// "" (run it), "serves", or "skip".
	directive string
	reason    string // why a skipped block is skipped
}

var (
	fenceRe     = regexp.MustCompile("^(\\s*)(```+)\\s*([^`\\s]*)\\s*$")
	directiveRe = regexp.MustCompile(`^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$`)
	skipRe      = regexp.MustCompile(`^skip\s*\((.*)\)$`)
)

// parseBlocks returns the fenced blocks of the document at dir/file. It fails on what would
// let a command escape the test: an unlabelled fence (label shell `sh`, anything else by what
// it is), a shell block labelled other than `sh`, a directive it does not know, a skip without
// a reason, or a directive that is not directly above an `sh` block.
func parseBlocks(dir, file string) ([]block, error) {
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		blocks    []block
		cur       *block
		closer    string
		indent    string
		pending   string // a directive waiting for its fence
		pendingAt int
		n         int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		if cur != nil {
			if m := fenceRe.FindStringSubmatch(line); m != nil && m[3] == "" && len(m[2]) >= len(closer) {
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			cur.text += strings.TrimPrefix(line, indent) + "\n"
			continue
		}
		if m := directiveRe.FindStringSubmatch(line); m != nil {
			if pending != "" {
				return nil, fmt.Errorf("%s:%d: doc-test directive not followed by a code block", file, pendingAt)
			}
			pending, pendingAt = m[1], n
			continue
		}
		if m := fenceRe.FindStringSubmatch(line); m != nil {
			b := block{file: file, line: n, lang: m[3]}
			indent, closer = m[1], m[2]
			if err := b.check(pending); err != nil {
				return nil, err
			}
			pending = ""
			cur = &b
			continue
		}
		if pending != "" && strings.TrimSpace(line) != "" {
			return nil, fmt.Errorf("%s:%d: doc-test directive not directly above a code block", file, pendingAt)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: code block never closed", file, cur.line)
	}
	if pending != "" {
		return nil, fmt.Errorf("%s:%d: doc-test directive at the end of the file", file, pendingAt)
	}
	return blocks, nil
}

// check validates the block's label and the directive above it, and records the directive.
func (b *block) check(directive string) error {
	at := fmt.Sprintf("%s:%d", b.file, b.line)
	switch b.lang {
	case "":
		return fmt.Errorf("%s: unlabelled code block: label shell commands `sh` (they are run by docs/doctest) and anything else by what it is (text, yaml, …)", at)
	case "bash", "shell", "console", "shell-session", "zsh":
		return fmt.Errorf("%s: shell block labelled %q: label it `sh` so docs/doctest runs it", at, b.lang)
	}
	if directive == "" {
		return nil
	}
	if b.lang != "sh" {
		return fmt.Errorf("%s: doc-test directive above a %q block; only `sh` blocks are run", at, b.lang)
	}
	if directive == "serves" {
		b.directive = "serves"
		return nil
	}
	if m := skipRe.FindStringSubmatch(directive); m != nil {
		if strings.TrimSpace(m[1]) == "" {
			return fmt.Errorf("%s: `doc-test: skip` needs a reason: <!-- doc-test: skip (needs Docker) -->", at)
		}
		b.directive, b.reason = "skip", strings.TrimSpace(m[1])
		return nil
	}
	return fmt.Errorf("%s: unknown doc-test directive %q (want `skip (reason)` or `serves`)", at, directive)
}

// TestDocumentBlocksAreLabelled holds even under -short: every block of the run documents is
// labelled, and every directive is one the runner understands.
func TestDocumentBlocksAreLabelled(t *testing.T) {
	for _, d := range documents {
		file := d.file
		blocks, err := parseBlocks(root, file)
		if err != nil {
			t.Error(err)
			continue
		}
		run := 0
		for _, b := range blocks {
			if b.lang == "sh" && b.directive != "skip" {
				run++
			}
		}
		if run == 0 {
			t.Errorf("%s: no runnable sh block found; is the parser reading the file?", file)
		}
	}
}

// TestParseBlocks checks the parser on a document made for it, the failures included.
func TestParseBlocks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	good := write("good.md", "# t\n\n```sh\necho one\n```\n\n<!-- doc-test: skip (needs Docker) -->\n```sh\ndocker ps\n```\n"+
		"<!-- doc-test: serves -->\n\n```sh\ngodwit serve\n```\n\n- item\n\n  ```text\n  out\n  ```\n")
	blocks, err := parseBlocks(dir, good)
	if err != nil {
		t.Fatal(err)
	}
	want := []block{
		{line: 3, lang: "sh", text: "echo one\n"},
		{line: 8, lang: "sh", text: "docker ps\n", directive: "skip", reason: "needs Docker"},
		{line: 13, lang: "sh", text: "godwit serve\n", directive: "serves"},
		{line: 19, lang: "text", text: "out\n"},
	}
	if len(blocks) != len(want) {
		t.Fatalf("got %d blocks, want %d: %+v", len(blocks), len(want), blocks)
	}
	for i, w := range want {
		w.file = good
		if blocks[i] != w {
			t.Errorf("block %d = %+v, want %+v", i, blocks[i], w)
		}
	}
	for name, body := range map[string]string{
		"unlabelled":    "```\nls\n```\n",
		"bash":          "```bash\nls\n```\n",
		"no reason":     "<!-- doc-test: skip () -->\n```sh\nls\n```\n",
		"unknown":       "<!-- doc-test: maybe -->\n```sh\nls\n```\n",
		"stray":         "<!-- doc-test: serves -->\ntext\n```sh\nls\n```\n",
		"not sh":        "<!-- doc-test: serves -->\n```text\nls\n```\n",
		"unclosed":      "```sh\nls\n",
		"dangling":      "```sh\nls\n```\n<!-- doc-test: serves -->\n",
		"two in a row":  "<!-- doc-test: serves -->\n<!-- doc-test: serves -->\n```sh\nls\n```\n",
		"skip no paren": "<!-- doc-test: skip -->\n```sh\nls\n```\n",
	} {
		if _, err := parseBlocks(dir, write("bad.md", body)); err == nil {
			t.Errorf("%s: parsed without error:\n%s", name, body)
		}
	}
}
