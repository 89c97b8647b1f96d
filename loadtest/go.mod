module github.com/liqstream/liqstream/loadtest

go 1.26.0

require (
	github.com/liqstream/liqstream/pkg v0.0.0
	github.com/lxzan/gws v1.10.2
	github.com/redis/go-redis/v9 v9.23.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/klauspost/compress v1.20.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace github.com/liqstream/liqstream/pkg => ../pkg
