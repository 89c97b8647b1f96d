module github.com/liqstream/liqstream/e2e

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/liqstream/liqstream/pkg v0.0.0
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/lxzan/gws v1.10.2 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)

replace github.com/liqstream/liqstream/pkg => ../pkg
