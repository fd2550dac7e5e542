// Command bench-go-ref is the Go side of `cargo xtask bench-all` that bench-go (the RPC
// client driver) does not cover: a Go v1 plugin server, and Moby's discovery
// (github.com/docker/docker/pkg/plugins Scan, the local registry's lookup, GetAll).
//
// Usage:
//
//	bench-go-ref serve SOCKET [SOCKET...]
//	    net/http on each unix socket: Plugin.Activate (VolumeDriver), VolumeDriver.Create,
//	    VolumeDriver.Get, VolumeDriver.Remove; prints "ready" once every socket listens.
//	bench-go-ref discovery SOCKDIR SPECDIR ROUNDS NAME
//	    Moby's Scan (median of ROUNDS), lookup of NAME (median of ROUNDS), then one GetAll
//	    of "VolumeDriver" in this fresh process (cold: nothing activated yet). Prints one
//	    JSON line {"first_scan_us","scan_us","lookup_us","getall_ms","found","activated"}.
//
// The discovery directories are package variables of pkg/plugins; xtask builds this against
// a copy of that package with one added file, bench_dirs.go, that sets them (BenchSetDirs)
// and exposes the local registry's lookup (BenchLookup). Every other line is Moby's.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/pkg/plugins"
)

const contentType = "application/vnd.docker.plugins.v1.2+json"

type volume struct {
	Name       string
	Mountpoint string `json:",omitempty"`
	CreatedAt  string `json:",omitempty"`
}

type server struct {
	mu      sync.RWMutex
	volumes map[string]volume
}

type request struct {
	Name string
}

func (s *server) reply(w http.ResponseWriter, v interface{}) {
	w.Header().Set("Content-Type", contentType)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *server) decode(w http.ResponseWriter, r *http.Request) (request, bool) {
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"Err": err.Error()})
		return req, false
	}
	return req, true
}

func (s *server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, map[string][]string{"Implements": {"VolumeDriver"}})
	})
	mux.HandleFunc("/VolumeDriver.Create", func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.decode(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		s.volumes[req.Name] = volume{Name: req.Name, Mountpoint: "/var/lib/bench/" + req.Name,
			CreatedAt: time.Now().UTC().Format(time.RFC3339)}
		s.mu.Unlock()
		s.reply(w, map[string]string{"Err": ""})
	})
	mux.HandleFunc("/VolumeDriver.Get", func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.decode(w, r)
		if !ok {
			return
		}
		s.mu.RLock()
		v, found := s.volumes[req.Name]
		s.mu.RUnlock()
		if !found {
			s.reply(w, map[string]string{"Err": "no such volume"})
			return
		}
		s.reply(w, map[string]interface{}{"Volume": v, "Err": ""})
	})
	mux.HandleFunc("/VolumeDriver.Remove", func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.decode(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		delete(s.volumes, req.Name)
		s.mu.Unlock()
		s.reply(w, map[string]string{"Err": ""})
	})
	return mux
}

func serve(sockets []string) {
	s := &server{volumes: map[string]volume{}}
	mux := s.routes()
	for _, path := range sockets {
		_ = os.Remove(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-go-ref:", err)
			os.Exit(1)
		}
		go func() { _ = http.Serve(l, mux) }()
	}
	fmt.Println("ready")
	select {}
}

func median(v []time.Duration) time.Duration {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

func discovery(sockDir, specDir string, rounds int, name string) {
	plugins.BenchSetDirs(sockDir, []string{specDir})
	var scans, lookups []time.Duration
	found := 0
	for i := 0; i < rounds; i++ {
		t := time.Now()
		names, err := plugins.Scan()
		scans = append(scans, time.Since(t))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-go-ref: scan:", err)
			os.Exit(1)
		}
		found = len(names)
	}
	for i := 0; i < rounds; i++ {
		t := time.Now()
		_, err := plugins.BenchLookup(name)
		lookups = append(lookups, time.Since(t))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-go-ref: lookup:", err)
			os.Exit(1)
		}
	}
	t := time.Now()
	all, err := plugins.GetAll("VolumeDriver")
	getall := time.Since(t)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-go-ref: GetAll:", err)
		os.Exit(1)
	}
	first := scans[0]
	fmt.Printf("{\"first_scan_us\":%.2f,\"scan_us\":%.2f,\"lookup_us\":%.2f,\"getall_ms\":%.3f,\"found\":%d,\"activated\":%d}\n",
		float64(first.Nanoseconds())/1e3, float64(median(scans).Nanoseconds())/1e3, float64(median(lookups).Nanoseconds())/1e3,
		float64(getall.Nanoseconds())/1e6, found, len(all))
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "serve" {
		serve(os.Args[2:])
	}
	if len(os.Args) == 6 && os.Args[1] == "discovery" {
		rounds, err := strconv.Atoi(os.Args[4])
		if err != nil || rounds < 1 {
			fmt.Fprintln(os.Stderr, "bench-go-ref: ROUNDS must be a positive number")
			os.Exit(2)
		}
		discovery(os.Args[2], os.Args[3], rounds, os.Args[5])
		return
	}
	fmt.Fprintln(os.Stderr, "usage: bench-go-ref serve SOCKET... | discovery SOCKDIR SPECDIR ROUNDS NAME")
	os.Exit(2)
}
