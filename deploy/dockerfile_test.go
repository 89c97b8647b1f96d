package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/mod/modfile"
)

// buildContext is what COPY and ADD can see: the files under the context
// root less what .dockerignore leaves out, judged by BuildKit's own matcher.
type buildContext struct {
	fsys fs.FS
	pm   *patternmatcher.PatternMatcher
}

func newBuildContext(fsys fs.FS, dockerignore string) (*buildContext, error) {
	patterns, err := ignorefile.ReadAll(strings.NewReader(dockerignore))
	if err != nil {
		return nil, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	return &buildContext{fsys: fsys, pm: pm}, nil
}

func (c *buildContext) excluded(p string) bool {
	m, err := c.pm.MatchesOrParentMatches(p)
	return err != nil || m
}

// sends checks that the COPY source src names something in the context that
// is not ignored: a file, or a directory with at least one file sent.
func (c *buildContext) sends(src string) error {
	p := path.Clean(strings.TrimPrefix(src, "/"))
	matches := []string{p}
	if strings.ContainsAny(p, "*?[") {
		var err error
		if matches, err = fs.Glob(c.fsys, p); err != nil || len(matches) == 0 {
			return fmt.Errorf("%s matches nothing in the build context", src)
		}
	}
	for _, m := range matches {
		fi, err := fs.Stat(c.fsys, m)
		if err != nil {
			return fmt.Errorf("%s does not exist in the build context", src)
		}
		if !fi.IsDir() {
			if c.excluded(m) {
				return fmt.Errorf("%s is excluded by .dockerignore", src)
			}
			continue
		}
		found := false
		err = fs.WalkDir(c.fsys, m, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && !c.excluded(q) {
				found = true
				return fs.SkipAll
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %v", src, err)
		}
		if !found {
			return fmt.Errorf("%s sends no file: .dockerignore excludes all of it", src)
		}
	}
	return nil
}

// dockerfile is one parsed by BuildKit's parser, as `docker build` parses it.
type dockerfile struct {
	name     string
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
}

func parseDockerfile(name, text string) (*dockerfile, error) {
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &dockerfile{name: name, stages: stages, metaArgs: metaArgs}, nil
}

func (d *dockerfile) final() *instructions.Stage { return &d.stages[len(d.stages)-1] }

func (d *dockerfile) isStage(name string) bool {
	for _, s := range d.stages {
		if s.Name != "" && strings.EqualFold(s.Name, name) {
			return true
		}
	}
	return false
}

func runText(r *instructions.RunCommand) string { return strings.Join(r.CmdLine, " ") }

// mounts are r's --mount flags. The parser fills their fields only when it
// expands the command, as the build does; words are kept as written.
func mounts(r *instructions.RunCommand) ([]*instructions.Mount, error) {
	if err := r.Expand(func(w string) (string, error) { return w, nil }); err != nil {
		return nil, err
	}
	return instructions.GetMounts(r), nil
}

// short is the start of a RUN command, to name it in a complaint.
func short(r *instructions.RunCommand) string {
	s := runText(r)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// goBuilds are the RUN commands that run `go build`, with their stage.
func (d *dockerfile) goBuilds() (runs []*instructions.RunCommand, stages []*instructions.Stage) {
	for i := range d.stages {
		for _, c := range d.stages[i].Commands {
			if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(runText(r), "go build") {
				runs, stages = append(runs, r), append(stages, &d.stages[i])
			}
		}
	}
	return runs, stages
}

// expect is what one image must be beyond the common rules.
type expect struct {
	cgo    string // CGO_ENABLED every go build must set
	expose string // the port the final stage exposes
}

// check is one rule; it returns what is wrong, nothing when all is well.
type check struct {
	name string
	fn   func(d *dockerfile, ctx *buildContext, want expect, work *modfile.WorkFile) []string
}

var (
	digestRE      = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	fullVersionRE = regexp.MustCompile(`^v?\d+\.\d+\.\d+([-.+_].*)?$|(^|-)\d{8}(-|$)`)
	secretRE      = regexp.MustCompile(`(?i)(PASSWORD|PASSWD|TOKEN|SECRET|KEY|CREDENTIAL)`)
	numericUserRE = regexp.MustCompile(`^(\d+)(:(\d+))?$`)
)

// pinned says why ref (a FROM image) is not pinned, or "".
func pinned(ref string) string {
	if strings.Contains(ref, "$") {
		return "uses a variable; write the pinned image out"
	}
	name, digest := ref, ""
	if i := strings.Index(ref, "@"); i >= 0 {
		name, digest = ref[:i], ref[i:]
	}
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		tag = name[i+1:]
	}
	switch {
	case tag == "latest":
		return "uses the tag latest"
	case digest != "" && !digestRE.MatchString(digest):
		return "has a malformed digest " + digest
	case digest != "":
		return ""
	case tag == "":
		return "has neither a tag nor a digest"
	case !fullVersionRE.MatchString(tag):
		return "has tag " + tag + ", not a full version (1.2.3 or a dated tag) and no digest"
	}
	return ""
}

var checks = []check{
	{"multi-stage", func(d *dockerfile, _ *buildContext, _ expect, _ *modfile.WorkFile) []string {
		if len(d.stages) < 2 {
			return []string{fmt.Sprintf("%d stage(s); the toolchain must stay in a build stage", len(d.stages))}
		}
		if d.final().BaseName == d.stages[0].BaseName {
			return []string{"the final stage starts from the builder's image " + d.final().BaseName}
		}
		return nil
	}},
	{"copy sources in context", func(d *dockerfile, ctx *buildContext, _ expect, _ *modfile.WorkFile) []string {
		var bad []string
		for _, s := range d.stages {
			for _, c := range s.Commands {
				var srcs []string
				switch c := c.(type) {
				case *instructions.CopyCommand:
					if c.From != "" {
						continue // from a stage or an image, not the context
					}
					srcs = c.SourcePaths
				case *instructions.AddCommand:
					srcs = c.SourcePaths
				}
				for _, src := range srcs {
					if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
						bad = append(bad, c.Name()+" "+src+": remote sources are not reproducible")
						continue
					}
					if err := ctx.sends(src); err != nil {
						bad = append(bad, c.Name()+" "+err.Error())
					}
				}
			}
		}
		return bad
	}},
	{"workspace modules copied", func(d *dockerfile, _ *buildContext, _ expect, work *modfile.WorkFile) []string {
		// go refuses a go.work whose modules' go.mod are missing.
		copied := map[string]bool{}
		for _, c := range d.stages[0].Commands {
			if c, ok := c.(*instructions.CopyCommand); ok && c.From == "" {
				for _, src := range c.SourcePaths {
					copied[path.Clean(src)] = true
				}
			}
		}
		var bad []string
		for _, f := range []string{"go.work", "go.work.sum"} {
			if !copied[f] {
				bad = append(bad, "the build stage does not COPY "+f)
			}
		}
		for _, u := range work.Use {
			mod := path.Join(path.Clean(u.Path), "go.mod")
			if !copied[mod] && !copied[path.Clean(u.Path)] {
				bad = append(bad, "go.work uses "+u.Path+" but the build stage does not COPY "+mod)
			}
		}
		return bad
	}},
	{"non-root numeric user", func(d *dockerfile, _ *buildContext, _ expect, _ *modfile.WorkFile) []string {
		user := ""
		for _, c := range d.final().Commands {
			if u, ok := c.(*instructions.UserCommand); ok {
				user = u.User
			}
		}
		m := numericUserRE.FindStringSubmatch(user)
		switch {
		case user == "":
			return []string{"the final stage sets no USER"}
		case m == nil:
			return []string{"USER " + user + " is not numeric uid[:gid] (Kubernetes runAsNonRoot cannot verify a name)"}
		case m[1] == "0" || m[3] == "0":
			return []string{"USER " + user + " is root"}
		}
		return nil
	}},
	{"bases pinned", func(d *dockerfile, _ *buildContext, _ expect, _ *modfile.WorkFile) []string {
		var bad []string
		for _, s := range d.stages {
			if d.isStage(s.BaseName) || s.BaseName == "scratch" {
				continue
			}
			if why := pinned(s.BaseName); why != "" {
				bad = append(bad, "FROM "+s.BaseName+" "+why)
			}
		}
		return bad
	}},
	{"no secrets in ENV or ARG", func(d *dockerfile, _ *buildContext, _ expect, _ *modfile.WorkFile) []string {
		var bad []string
		args := d.metaArgs
		for _, s := range d.stages {
			for _, c := range s.Commands {
				switch c := c.(type) {
				case *instructions.ArgCommand:
					args = append(args, *c)
				case *instructions.EnvCommand:
					for _, kv := range c.Env {
						if secretRE.MatchString(kv.Key) && kv.Value != "" {
							bad = append(bad, "ENV "+kv.Key+" carries a value into the image")
						}
					}
				}
			}
		}
		for _, a := range args {
			for _, kv := range a.Args {
				if secretRE.MatchString(kv.Key) && kv.Value != nil && *kv.Value != "" {
					bad = append(bad, "ARG "+kv.Key+" has a default value (build args are kept in the image history)")
				}
			}
		}
		return bad
	}},
	{"cgo setting", func(d *dockerfile, _ *buildContext, want expect, _ *modfile.WorkFile) []string {
		runs, stages := d.goBuilds()
		if len(runs) == 0 {
			return []string{"no RUN runs go build"}
		}
		var bad []string
		for i, r := range runs {
			set := strings.Contains(runText(r), "CGO_ENABLED="+want.cgo)
			for _, c := range stages[i].Commands {
				if e, ok := c.(*instructions.EnvCommand); ok {
					for _, kv := range e.Env {
						set = set || (kv.Key == "CGO_ENABLED" && kv.Value == want.cgo)
					}
				}
			}
			if !set {
				bad = append(bad, "go build does not set CGO_ENABLED="+want.cgo)
			}
		}
		return bad
	}},
	{"version stamped", func(d *dockerfile, _ *buildContext, _ expect, _ *modfile.WorkFile) []string {
		runs, stages := d.goBuilds()
		if len(runs) == 0 {
			return []string{"no RUN runs go build"}
		}
		var bad []string
		for i, r := range runs {
			txt := runText(r)
			for _, v := range []string{"Version=${VERSION}", "Revision=${REVISION}"} {
				if !strings.Contains(txt, "-X github.com/liqstream/liqstream/pkg/buildinfo."+v) {
					bad = append(bad, "go build's -ldflags lack -X github.com/liqstream/liqstream/pkg/buildinfo."+v)
				}
			}
			if !strings.Contains(txt, "-trimpath") {
				bad = append(bad, "go build lacks -trimpath")
			}
			declared := map[string]bool{}
			for _, c := range stages[i].Commands {
				if a, ok := c.(*instructions.ArgCommand); ok {
					for _, kv := range a.Args {
						declared[kv.Key] = true
					}
				}
			}
			for _, a := range []string{"VERSION", "REVISION"} {
				if !declared[a] {
					bad = append(bad, "the build stage declares no ARG "+a)
				}
			}
		}
		return bad
	}},
	{"module caches mounted", func(d *dockerfile, _ *buildContext, _ expect, _ *modfile.WorkFile) []string {
		var bad []string
		for _, s := range d.stages {
			for _, c := range s.Commands {
				r, ok := c.(*instructions.RunCommand)
				if !ok || !strings.Contains(runText(r), "go build") && !strings.Contains(runText(r), "go mod download") {
					continue
				}
				ms, err := mounts(r)
				if err != nil {
					bad = append(bad, "RUN "+short(r)+": "+err.Error())
					continue
				}
				cached := map[string]bool{}
				for _, m := range ms {
					if m.Type == instructions.MountTypeCache {
						cached[m.Target] = true
					}
				}
				if !cached["/go/pkg/mod"] {
					bad = append(bad, "RUN "+short(r)+" mounts no cache at /go/pkg/mod")
				}
				if strings.Contains(runText(r), "go build") && !cached["/root/.cache/go-build"] {
					bad = append(bad, "RUN "+short(r)+" mounts no cache at /root/.cache/go-build")
				}
			}
		}
		return bad
	}},
	{"port exposed", func(d *dockerfile, _ *buildContext, want expect, _ *modfile.WorkFile) []string {
		for _, c := range d.final().Commands {
			if e, ok := c.(*instructions.ExposeCommand); ok {
				for _, p := range e.Ports {
					if strings.TrimSuffix(p, "/tcp") == want.expose {
						return nil
					}
				}
			}
		}
		return []string{"the final stage does not EXPOSE " + want.expose}
	}},
}

func loadWork(t *testing.T, root string) *modfile.WorkFile {
	t.Helper()
	work, err := modfile.ParseWork("go.work", []byte(readFile(t, filepath.Join(root, "go.work"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	return work
}

func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	ctx, err := newBuildContext(os.DirFS(root), readFile(t, filepath.Join(root, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	work := loadWork(t, root)
	images := map[string]expect{
		"deploy/docker/gateway.Dockerfile":     {cgo: "0", expose: "8080"},
		"deploy/docker/snapshotter.Dockerfile": {cgo: "1", expose: "8081"},
	}
	for file, want := range images {
		d, err := parseDockerfile(file, readFile(t, filepath.Join(root, file)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range checks {
			t.Run(path.Base(file)+"/"+c.name, func(t *testing.T) {
				for _, p := range c.fn(d, ctx, want, work) {
					t.Error(p)
				}
			})
		}
	}
}

// Each rule must be able to fail: a Dockerfile that breaks it, in a small
// fake context, gets a complaint from exactly that rule.
func TestDockerfileChecksCatch(t *testing.T) {
	fsys := fstest.MapFS{
		"go.work":           {Data: []byte("go 1.26\nuse ./app\n")},
		"go.work.sum":       {},
		"app/go.mod":        {Data: []byte("module app\n")},
		"app/main.go":       {Data: []byte("package main\n")},
		"app/main_test.go":  {Data: []byte("package main\n")},
		"secrets/token.txt": {Data: []byte("x")},
	}
	ctx, err := newBuildContext(fsys, "secrets/\n**/*_test.go\n")
	if err != nil {
		t.Fatal(err)
	}
	work, err := modfile.ParseWork("go.work", fsys["go.work"].Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	const good = `FROM golang:1.26.8-bookworm AS build
ARG VERSION=dev
ARG REVISION=
COPY go.work go.work.sum ./
COPY app/go.mod app/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY app/ app/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-X github.com/liqstream/liqstream/pkg/buildinfo.Version=${VERSION} -X github.com/liqstream/liqstream/pkg/buildinfo.Revision=${REVISION}" -o /out/app ./app
FROM gcr.io/distroless/static-debian12:nonroot@sha256:` + "2b7c93f6d6648c11f0e80a48558c8f77885eb0445213b8e69a6a0d7c89fc6ae4" + `
COPY --from=build /out/app /app
USER 65532:65532
EXPOSE 8080
`
	want := expect{cgo: "0", expose: "8080"}
	tests := []struct {
		name, check string
		edit        func(string) string
		complaint   string
	}{
		{"single stage", "multi-stage", func(s string) string {
			return s[:strings.Index(s, "FROM gcr.io")] + "USER 65532\nEXPOSE 8080\n"
		}, "1 stage(s)"},
		{"missing source", "copy sources in context", func(s string) string {
			return strings.Replace(s, "COPY app/ app/", "COPY app/ lib/ ./", 1)
		}, "lib/ does not exist"},
		{"ignored source", "copy sources in context", func(s string) string {
			return strings.Replace(s, "COPY app/ app/", "COPY app/ app/\nCOPY secrets/token.txt /", 1)
		}, "secrets/token.txt is excluded by .dockerignore"},
		{"only ignored files", "copy sources in context", func(s string) string {
			return strings.Replace(s, "COPY app/ app/", "COPY app/main_test.go app/", 1)
		}, "excluded by .dockerignore"},
		{"remote ADD", "copy sources in context", func(s string) string {
			return strings.Replace(s, "COPY app/ app/", "ADD https://example.com/x.tgz /x", 1)
		}, "remote sources"},
		{"workspace module not copied", "workspace modules copied", func(s string) string {
			s = strings.Replace(s, "COPY app/go.mod app/\n", "", 1)
			return strings.Replace(s, "COPY app/ app/", "COPY app/main.go app/", 1)
		}, "go.work uses ./app"},
		{"no user", "non-root numeric user", func(s string) string {
			return strings.Replace(s, "USER 65532:65532\n", "", 1)
		}, "sets no USER"},
		{"root user", "non-root numeric user", func(s string) string {
			return strings.Replace(s, "USER 65532:65532", "USER 0", 1)
		}, "is root"},
		{"named user", "non-root numeric user", func(s string) string {
			return strings.Replace(s, "USER 65532:65532", "USER nonroot", 1)
		}, "not numeric"},
		{"root group", "non-root numeric user", func(s string) string {
			return strings.Replace(s, "USER 65532:65532", "USER 65532:0", 1)
		}, "is root"},
		{"latest", "bases pinned", func(s string) string {
			return strings.Replace(s, "golang:1.26.8-bookworm", "golang:latest", 1)
		}, "uses the tag latest"},
		{"bare major", "bases pinned", func(s string) string {
			return strings.Replace(s, "golang:1.26.8-bookworm", "golang:1-bookworm", 1)
		}, "not a full version"},
		{"no tag", "bases pinned", func(s string) string {
			return strings.Replace(s, "golang:1.26.8-bookworm", "golang", 1)
		}, "neither a tag nor a digest"},
		{"short digest", "bases pinned", func(s string) string {
			return strings.Replace(s, "@sha256:2b7c93f6", "@sha256:", 1)
		}, "malformed digest"},
		{"variable base", "bases pinned", func(s string) string {
			return "ARG BASE=golang:1.26.8\n" + strings.Replace(s, "golang:1.26.8-bookworm", "${BASE}", 1)
		}, "uses a variable"},
		{"secret env", "no secrets in ENV or ARG", func(s string) string {
			return strings.Replace(s, "EXPOSE 8080", "ENV API_TOKEN=abc\nEXPOSE 8080", 1)
		}, "ENV API_TOKEN"},
		{"secret arg default", "no secrets in ENV or ARG", func(s string) string {
			return "ARG DB_PASSWORD=hunter2\n" + s
		}, "ARG DB_PASSWORD"},
		{"cgo left on", "cgo setting", func(s string) string {
			return strings.Replace(s, "CGO_ENABLED=0 go build", "go build", 1)
		}, "CGO_ENABLED=0"},
		{"no stamp", "version stamped", func(s string) string {
			return strings.Replace(s, "-X github.com/liqstream/liqstream/pkg/buildinfo.Revision=${REVISION}", "", 1)
		}, "buildinfo.Revision"},
		{"no version arg", "version stamped", func(s string) string {
			return strings.Replace(s, "ARG VERSION=dev\n", "", 1)
		}, "ARG VERSION"},
		{"no trimpath", "version stamped", func(s string) string {
			return strings.Replace(s, "-trimpath ", "", 1)
		}, "-trimpath"},
		{"no module cache", "module caches mounted", func(s string) string {
			return strings.Replace(s, "RUN --mount=type=cache,target=/go/pkg/mod go mod download", "RUN go mod download", 1)
		}, "/go/pkg/mod"},
		{"no port", "port exposed", func(s string) string {
			return strings.Replace(s, "EXPOSE 8080", "EXPOSE 9090", 1)
		}, "EXPOSE 8080"},
	}
	byName := map[string]check{}
	for _, c := range checks {
		byName[c.name] = c
	}
	// The good Dockerfile passes every rule, so each complaint below comes
	// from its edit alone.
	d, err := parseDockerfile("good", good)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if p := c.fn(d, ctx, want, work); len(p) > 0 {
			t.Fatalf("the good Dockerfile fails %q: %v", c.name, p)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := byName[tc.check]
			if !ok {
				t.Fatalf("no check %q", tc.check)
			}
			d, err := parseDockerfile(tc.name, tc.edit(good))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(c.fn(d, ctx, want, work), "\n")
			if !strings.Contains(got, tc.complaint) {
				t.Fatalf("check %q said %q, want a complaint containing %q", tc.check, got, tc.complaint)
			}
		})
	}
}

// The context sends the workspace and nothing private or bulky.
func TestDockerignore(t *testing.T) {
	root := repoRoot(t)
	ctx, err := newBuildContext(os.DirFS(root), readFile(t, filepath.Join(root, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"go.work":                         true,
		"pkg/config/config.go":            true,
		"services/gateway/web/index.html": true,
		"e2e/go.mod":                      true,
		"loadtest/go.sum":                 true,
		"pkg/config/config_test.go":       false,
		"pkg/protocol/testdata/x":         false,
		".git/config":                     false,
		"bin/gateway":                     false,
		"data/liqstream.duckdb":           false,
		"docs/OPERATIONS.md":              false,
		"k8s/liqstream/Chart.yaml":        false,
		"loadtest/k6/node_modules/x.js":   false,
		"e2e/ontime_test.go":              false,
		"deploy/compose.yaml":             false,
		".env":                            false,
	} {
		if got := !ctx.excluded(p); got != want {
			t.Errorf("%s sent = %v, want %v", p, got, want)
		}
	}
}
