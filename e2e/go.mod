module github.com/liqstream/liqstream/e2e

go 1.26

require github.com/liqstream/liqstream/pkg v0.0.0

require (
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/lxzan/gws v1.10.2 // indirect
)

replace github.com/liqstream/liqstream/pkg => ../pkg
