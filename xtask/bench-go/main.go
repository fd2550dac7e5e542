// Command bench-go drives a v1 plugin with Moby's own client (github.com/docker/docker/pkg/plugins)
// so `cargo xtask bench` can compare dockplug's client against it on the same server.
//
// Usage: bench-go ADDR METHOD JSON N C
// Prints one JSON line: {"c":…,"calls_per_sec":…,"p50_us":…,"p99_us":…,"errors":…,"cpu_ns_per_call":…}
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/pkg/plugins"
	"github.com/docker/go-connections/tlsconfig"
)

func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: bench-go ADDR METHOD JSON N C")
		os.Exit(2)
	}
	addr, method := os.Args[1], os.Args[2]
	var args interface{}
	if err := json.Unmarshal([]byte(os.Args[3]), &args); err != nil {
		fmt.Fprintln(os.Stderr, "bench-go: bad JSON:", err)
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[4])
	c, _ := strconv.Atoi(os.Args[5])
	if n < 1 || c < 1 {
		fmt.Fprintln(os.Stderr, "bench-go: N and C must be positive")
		os.Exit(2)
	}
	client, err := plugins.NewClient(addr, &tlsconfig.Options{InsecureSkipVerify: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-go:", err)
		os.Exit(1)
	}
	// Warm up: open the connections the measured run will reuse.
	for i := 0; i < c; i++ {
		var ret interface{}
		_ = client.Call(method, args, &ret)
	}

	lat := make([]time.Duration, n)
	var errs int64
	var mu sync.Mutex
	var next int
	var wg sync.WaitGroup
	cpu0 := cpuNanos()
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				t := time.Now()
				var ret interface{}
				if err := client.Call(method, args, &ret); err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuNanos() - cpu0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) int64 {
		i := int(float64(n-1) * p)
		return lat[i].Microseconds()
	}
	fmt.Printf("{\"c\":%d,\"calls_per_sec\":%.1f,\"p50_us\":%d,\"p99_us\":%d,\"errors\":%d,\"cpu_ns_per_call\":%d}\n",
		c, float64(n)/elapsed.Seconds(), pct(0.50), pct(0.99), errs, cpu/int64(n))
}
