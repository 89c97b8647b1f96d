module github.com/liqstream/liqstream/loadtest

go 1.26

replace github.com/liqstream/liqstream/pkg => ../pkg
