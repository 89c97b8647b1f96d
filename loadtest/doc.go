// Package loadtest will hold wsload, liqstream's Go load generator, and the k6
// scripts. It is part of the workspace now so the layout is fixed from day one.
package loadtest
