package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/compose/nginx.conf from deploy/nginx/nginx.conf.tmpl")

// The compose edge is the local fleet's (deploy/local/fleet.sh) for the
// compose gateways: listen on 8080 in the container, the temp and pid files
// under /tmp (writable in the nginx image), one server line per gateway.
var composeEdge = struct {
	listen, prefix string
	gateways       []string
}{listen: "8080", prefix: "/tmp", gateways: []string{"gateway-1:8080", "gateway-2:8080", "gateway-3:8080"}}

const nginxConfHeader = "# Generated from deploy/nginx/nginx.conf.tmpl for deploy/compose.yaml; do not\n" +
	"# edit: change the template and run `cd deploy && GOWORK=off go test -run TestComposeNginxConf -update .`\n"

// renderNginx does what deploy/local/fleet.sh does with the template: the
// shell's $(cat) drops trailing newlines, printf '%s\n' adds one back.
func renderNginx(tmpl, listen, prefix string, servers []string) string {
	var upstreams strings.Builder
	for _, s := range servers {
		// max_fails=0: see the template's upstream block.
		fmt.Fprintf(&upstreams, "        server %s max_fails=0;\n", s)
	}
	r := strings.NewReplacer("{{LISTEN}}", listen, "{{PREFIX}}", prefix, "{{UPSTREAMS}}", upstreams.String())
	return r.Replace(strings.TrimRight(tmpl, "\n")) + "\n"
}

func TestComposeNginxConf(t *testing.T) {
	root := repoRoot(t)
	tmpl := readFile(t, filepath.Join(root, "deploy/nginx/nginx.conf.tmpl"))
	want := nginxConfHeader + renderNginx(tmpl, composeEdge.listen, composeEdge.prefix, composeEdge.gateways)
	if strings.Contains(want, "{{") {
		t.Fatalf("the template has a placeholder renderNginx (and fleet.sh) do not fill:\n%s", want)
	}
	path := filepath.Join(root, "deploy/compose/nginx.conf")
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, path); got != want {
		t.Fatalf("deploy/compose/nginx.conf differs from deploy/nginx/nginx.conf.tmpl rendered for the compose gateways; run\n"+
			"  cd deploy && GOWORK=off go test -run TestComposeNginxConf -update .\n%s", firstDiff(got, want))
	}
}

// firstDiff names the first line where got and want part.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  have %q\n  want %q", i+1, gl, wl)
		}
	}
	return "(equal)"
}

// The renderer is the one fleet.sh runs: same output for the same values.
func TestRenderNginxLikeFleet(t *testing.T) {
	tmpl := "a {{LISTEN}} {{PREFIX}}/x;\nupstream u {\n{{UPSTREAMS}}    }\n\n\n"
	got := renderNginx(tmpl, "127.0.0.1:8080", "/p", []string{"127.0.0.1:8091", "127.0.0.1:8092"})
	want := "a 127.0.0.1:8080 /p/x;\nupstream u {\n" +
		"        server 127.0.0.1:8091 max_fails=0;\n" +
		"        server 127.0.0.1:8092 max_fails=0;\n" +
		"    }\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
