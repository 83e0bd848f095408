// A Go program with a known allocation pattern, used by heapprof's CLI tests
// to produce real Go heap, allocs and CPU profiles.
//
//	goprog HEAP ALLOCS CPU [SCALE]
//
// SCALE (default 1) multiplies the small and churned allocations, so that
// two runs differ by a known amount.
package main

import (
	"os"
	"strconv"
	"runtime"
	"runtime/pprof"
)

var keep [][]byte
var sink []byte

//go:noinline
func allocSmall(n int) {
	for i := 0; i < n; i++ {
		keep = append(keep, make([]byte, 1024))
	}
}

//go:noinline
func allocLarge(n int) {
	for i := 0; i < n; i++ {
		keep = append(keep, make([]byte, 1<<20))
	}
}

//go:noinline
func churn(n int) {
	for i := 0; i < n; i++ {
		sink = make([]byte, 256+i%64)
	}
}

//go:noinline
func recurse(depth int) {
	if depth == 0 {
		allocSmall(50)
		return
	}
	recurse(depth - 1)
}

//go:noinline
func spin(n int) int {
	x := 0
	for i := 0; i < n; i++ {
		x += i * i % 7
	}
	return x
}

func write(path string, profile string) {
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if err := pprof.Lookup(profile).WriteTo(f, 0); err != nil {
		panic(err)
	}
}

func main() {
	runtime.MemProfileRate = 1
	scale := 1
	if len(os.Args) > 4 {
		scale, _ = strconv.Atoi(os.Args[4])
	}
	allocSmall(2000 * scale)
	allocLarge(8)
	churn(5000 * scale)
	recurse(5)
	runtime.GC()
	write(os.Args[1], "heap")
	write(os.Args[2], "allocs")

	f, err := os.Create(os.Args[3])
	if err != nil {
		panic(err)
	}
	pprof.StartCPUProfile(f)
	total := 0
	for i := 0; i < 40; i++ {
		total += spin(2000000)
	}
	pprof.StopCPUProfile()
	f.Close()
	if total == 42 {
		println(total)
	}
}
