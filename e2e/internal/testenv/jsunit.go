package testenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// JSResult is one case of a JS suite run by JSCases.
type JSResult struct {
	Name  string `json:"name"`
	Pass  bool   `json:"pass"`
	Error string `json:"error"`
}

// JSCases runs the cases of a suite module in e2e/testdata (one exporting
// `cases`, e.g. client_test.js) whose names start with prefix, in a tab of
// browser, against the real services/gateway/web/liqstream.js served from
// the same origin, and returns their results.
func JSCases(t testing.TB, browser context.Context, suite, prefix string) []JSResult {
	t.Helper()
	root := RepoRoot()
	mux := http.NewServeMux()
	mux.Handle("/testdata/", http.StripPrefix("/testdata/", http.FileServer(http.Dir(filepath.Join(root, "e2e", "testdata")))))
	mux.Handle("/", http.FileServer(http.Dir(filepath.Join(root, "services", "gateway", "web"))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tab := Tab(t, browser)
	q := url.Values{"suite": {suite}, "prefix": {prefix}}
	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/testdata/suite.html?"+q.Encode()))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`window.__done === true`, chromedp.WithPollingInterval(20*time.Millisecond)))
	}
	var results []JSResult
	if err == nil {
		results, err = chromedp.Run(ctx, chromedp.Evaluate[[]JSResult](`window.__results`))
	}
	if err != nil {
		t.Fatalf("run %s (prefix %q): %v", suite, prefix, err)
	}
	return results
}

// RunJSCases runs JSCases and reports each case as a subtest of t. Fewer
// than atLeast cases fails t: a suite that stopped early, or a prefix that
// matches nothing, must not pass by running nothing.
func RunJSCases(t *testing.T, browser context.Context, suite, prefix string, atLeast int) {
	t.Helper()
	results := JSCases(t, browser, suite, prefix)
	if len(results) < atLeast {
		t.Fatalf("%s: only %d cases with prefix %q ran, want at least %d: %+v", suite, len(results), prefix, atLeast, results)
	}
	for _, r := range results {
		t.Run(r.Name, func(t *testing.T) {
			if !r.Pass {
				t.Error(r.Error)
			}
		})
	}
}
