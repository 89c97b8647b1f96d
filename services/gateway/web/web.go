// Package web holds the page and the JS client the gateway serves at /.
package web

import "embed"

// FS is the static site: index.html, liqstream.js and the page's script.
//
//go:embed *.html *.js *.css
var FS embed.FS
