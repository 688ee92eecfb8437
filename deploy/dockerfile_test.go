package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerInstructions returns the Dockerfile's instructions, continuation
// lines joined and comments dropped.
func dockerInstructions(data []byte) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ins := dockerInstructions(data)
	var froms, copies []string
	joined := "\n" + strings.Join(ins, "\n") + "\n"
	for _, in := range ins {
		switch strings.ToUpper(strings.Fields(in)[0]) {
		case "FROM":
			froms = append(froms, in)
		case "COPY":
			copies = append(copies, in)
		}
	}
	if len(froms) != 2 || !strings.Contains(froms[0], " golang:") || !strings.HasSuffix(froms[0], " AS build") ||
		froms[1] != "FROM gcr.io/distroless/static-debian12:nonroot" {
		t.Fatalf("Dockerfile stages %q: want a golang builder named build, then distroless/static nonroot", froms)
	}

	// The builder's Go is the one go.mod asks for.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVersion == nil || !strings.Contains(froms[0], " golang:"+string(goVersion[1])+"-bookworm ") {
		t.Errorf("Dockerfile builder %q does not match go.mod's go %s", froms[0], goVersion[1])
	}

	for _, want := range []string{
		"\nCOPY go.mod go.sum ./\nRUN go mod download",
		"CGO_ENABLED=0 ",
		"go build -trimpath -ldflags='-s -w' -o /out/keymint ./services/keymint\n",
		"\nUSER 65532:65532\n",
		"\nEXPOSE 8080 9090\n",
		"\nENTRYPOINT [\"/keymint\"]\n",
		"\nCMD [\"serve\"]\n",
		"KEYMINT_HTTP_ADDR=0.0.0.0:8080",
		"KEYMINT_GRPC_ADDR=0.0.0.0:9090",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("Dockerfile lacks %q", strings.TrimSpace(want))
		}
	}
	if !strings.HasSuffix(joined, "\nCMD [\"serve\"]\n") {
		t.Error("Dockerfile: CMD [\"serve\"] should be the last instruction")
	}

	// Every source the build stage copies exists, and together they hold
	// every package of the module the binary is built from.
	var copied []string
	for _, c := range copies {
		f := strings.Fields(c)[1:]
		if strings.HasPrefix(f[0], "--from=") {
			continue
		}
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("Dockerfile copies %s: %v", src, err)
			}
			copied = append(copied, strings.TrimSuffix(src, "/"))
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-e", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./services/keymint")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a dependency from the module cache
		}
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		if !slices.Contains(copied, top) {
			t.Errorf("Dockerfile does not copy %s, which keymint is built from", rel)
		}
	}
}

// TestDockerignore: the build context leaves out the embedded store (with
// its pepper), env files, keys and .git.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatalf("no .dockerignore at the repository root: %v", err)
	}
	var patterns []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			if strings.HasPrefix(line, "!") {
				t.Errorf(".dockerignore: exception %q: keep the list to exclusions", line)
			}
			patterns = append(patterns, line)
		}
	}
	for _, want := range []string{"data/", "**/data/", ".env", "**/.env", "*.pem", "*.key", ".git/", "bin/"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
}
