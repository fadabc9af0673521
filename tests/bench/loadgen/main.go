// loadgen: an HTTPS keep-alive load generator for `make bench`.
//
// It presents a client certificate (or speaks plain HTTP without -ca), keeps one connection
// per worker, and either runs closed-loop (as fast as the server answers) or open-loop at a
// fixed total rate, cycling through the URLs given on standard input. It prints one JSON
// object: requests, errors, seconds, throughput and latency percentiles in milliseconds.
// Written in Go so that the load generator is not the bottleneck when measuring a Python
// server on the same machine. With -serve it is instead the benchmark's fastest upstream. With
// -create it POSTs the objects given on standard input (a collection path, a tab, the object's
// JSON, a line each) to kube-apiserver: the setup of 100,000 ScaledObjects, at the server's pace.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type result struct {
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"`
}

func main() {
	ca := flag.String("ca", "", "CA bundle (PEM); none: plain HTTP")
	cert := flag.String("cert", "", "client certificate (PEM)")
	key := flag.String("key", "", "client key (PEM)")
	concurrency := flag.Int("c", 1, "workers, one keep-alive connection each")
	duration := flag.Duration("d", 5*time.Second, "how long to run")
	rate := flag.Float64("rate", 0, "total requests per second (0: as fast as possible)")
	warmup := flag.Duration("warmup", time.Second, "time before measuring")
	serve := flag.String("serve", "", "instead of loading: answer \"hello\" on this address (an upstream)")
	create := flag.String("create", "", "instead of loading: POST the objects on standard input to this server")
	flag.Parse()
	if *serve != "" {
		serveHello(*serve)
		return
	}
	if *create != "" {
		createAll(newClient(*ca, *cert, *key, *concurrency), *create, *concurrency)
		return
	}

	urls := readURLs()
	client := newClient(*ca, *cert, *key, *concurrency)
	run(client, urls, *concurrency, *warmup, 0, false)
	latencies, errors, elapsed := run(client, urls, *concurrency, *duration, *rate, true)
	report(latencies, errors, elapsed, *concurrency, *rate)
}

func readURLs() []string {
	var urls []string
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		if line := scanner.Text(); line != "" {
			urls = append(urls, line)
		}
	}
	if len(urls) == 0 {
		fail("no URLs on standard input")
	}
	return urls
}

func newClient(caPath, certPath, keyPath string, conns int) *http.Client {
	if caPath == "" { // plain HTTP (the interceptor benchmark)
		transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, ForceAttemptHTTP2: false}
		return &http.Client{Transport: transport, Timeout: 10 * time.Second}
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(caPath)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		fail("cannot read CA " + caPath)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		fail(err.Error())
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}
}

func run(client *http.Client, urls []string, workers int, duration time.Duration, rate float64, measure bool) ([]time.Duration, int, time.Duration) {
	var mu sync.Mutex
	var latencies []time.Duration
	errors := 0
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var local []time.Duration
			localErrors := 0
			interval := time.Duration(0)
			if rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(workers) / rate)
			}
			next := start.Add(time.Duration(w) * interval / time.Duration(workers))
			for i := w; ; i += workers {
				if rate > 0 {
					if wait := time.Until(next); wait > 0 {
						time.Sleep(wait)
					}
				}
				now := time.Now()
				if now.After(deadline) {
					break
				}
				sent := now
				if rate > 0 {
					sent = next // open loop: latency counts from the scheduled time
					next = next.Add(interval)
				}
				if !get(client, urls[i%len(urls)]) {
					localErrors++
				}
				local = append(local, time.Since(sent))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			errors += localErrors
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	return latencies, errors, time.Since(start)
}

func get(client *http.Client, url string) bool {
	response, err := client.Get(url)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, response.Body)
	response.Body.Close()
	return response.StatusCode == http.StatusOK
}

func report(latencies []time.Duration, errors int, elapsed time.Duration, concurrency int, rate float64) {
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pick := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		index := int(q * float64(len(latencies)-1))
		return float64(latencies[index].Microseconds()) / 1000
	}
	out := result{
		Requests: len(latencies), Errors: errors, Seconds: elapsed.Seconds(),
		PerSecond: float64(len(latencies)) / elapsed.Seconds(),
		P50:       pick(0.50), P99: pick(0.99), Max: pick(1.0), Concurrency: concurrency, Rate: rate,
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "loadgen:", message)
	os.Exit(2)
}

// serveHello is the benchmark's fastest upstream: keep-alive HTTP/1.1, five bytes per answer.
func serveHello(address string) {
	body := []byte("hello")
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})
	fmt.Println("listening", address)
	if err := http.ListenAndServe(address, handler); err != nil {
		fail(err.Error())
	}
}

// createAll POSTs each "path<TAB>json" line of standard input to server, `workers` at a time; an
// object that exists already (409) counts as created, 429 and 5xx are retried up to five times.
func createAll(client *http.Client, server string, workers int) {
	lines := make(chan string, workers)
	var mu sync.Mutex
	created, errors := 0, 0
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for line := range lines {
				ok := post(client, server, line)
				mu.Lock()
				if ok {
					created++
				} else {
					errors++
				}
				mu.Unlock()
			}
		}()
	}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		if line := scanner.Text(); line != "" {
			lines <- line
		}
	}
	close(lines)
	wg.Wait()
	elapsed := time.Since(start)
	out := result{Requests: created, Errors: errors, Seconds: elapsed.Seconds(),
		PerSecond: float64(created) / elapsed.Seconds(), Concurrency: workers}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func post(client *http.Client, server, line string) bool {
	path, body, found := strings.Cut(line, "\t")
	if !found {
		return false
	}
	for attempt := 0; attempt < 5; attempt++ {
		response, err := client.Post(server+path, "application/json", strings.NewReader(body))
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		_, _ = io.Copy(io.Discard, response.Body)
		response.Body.Close()
		switch code := response.StatusCode; {
		case code == http.StatusCreated || code == http.StatusConflict:
			return true
		case code == http.StatusTooManyRequests || code >= 500:
			time.Sleep(time.Second)
		default:
			fmt.Fprintln(os.Stderr, "loadgen: POST", path, "answered", code)
			return false
		}
	}
	return false
}
