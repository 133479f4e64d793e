// natsring-gobench: a load generator on the real Go client (nats.go, as Debian packages it),
// speaking natsring-bench's command line and JSON report, so scripts/bench.py can run the same
// scenarios with the client most NATS users have.
//
//	natsring-gobench pub    --size B --msgs N [--pubs P]              --server H:P [--server-pid PID] --json
//	natsring-gobench pubsub --size B --msgs N [--subs S] [--queue Q]  --server H:P [--server-pid PID] --json
//	natsring-gobench req    --size B --msgs N [--rate R]              --server H:P [--server-pid PID] --json
//
// pub: P publishers share N messages and flush. pubsub: S subscribers (a queue group with
// --queue), one publisher; the run ends when every expected delivery arrived (or 30 s passed
// without progress). req: one requester, one responder, N sequential round trips, latency in
// microseconds; with --rate, the round trips start R a second (light load: the server idles
// between them), else back to back. Server CPU comes from /proc/PID/task/*/schedstat around the measured part.
// Built by scripts/bench.sh: GOPATH mode against /usr/share/gocode (nats.go 1.22).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type latency struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Count uint64  `json:"count"`
}

type report struct {
	Mode               string   `json:"mode"`
	Client             string   `json:"client"`
	PayloadBytes       int      `json:"payload_bytes"`
	Publishers         int      `json:"publishers"`
	Subscribers        int      `json:"subscribers"`
	Queue              *string  `json:"queue"`
	Published          uint64   `json:"published"`
	Delivered          uint64   `json:"delivered"`
	ExpectedDeliveries uint64   `json:"expected_deliveries"`
	Seconds            float64  `json:"seconds"`
	PublishRateMsgs    float64  `json:"publish_rate_msgs"`
	DeliveryRateMsgs   float64  `json:"delivery_rate_msgs"`
	PayloadRateBytes   float64  `json:"payload_rate_bytes"`
	ServerCPUSeconds   *float64 `json:"server_cpu_seconds"`
	ServerCPUNsPerMsg  *float64 `json:"server_cpu_ns_per_msg"`
	ClientCPUNsPerMsg  *float64 `json:"client_cpu_ns_per_msg"`
	LatencyUs          *latency `json:"latency_us"`
}

// serverCPUNs is the CPU time of every thread of process pid, in nanoseconds.
func serverCPUNs(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, false
	}
	var total uint64
	for _, task := range tasks {
		text, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(text))
		if len(fields) == 0 {
			continue
		}
		ns, err := strconv.ParseUint(fields[0], 10, 64)
		if err == nil {
			total += ns
		}
	}
	return total, true
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "natsring-gobench: "+format+"\n", args...)
	os.Exit(1)
}

func connect(url string) *nats.Conn {
	nc, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		fail("connect %s: %v", url, err)
	}
	return nc
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: natsring-gobench pub|pubsub|req [options]")
	}
	mode := os.Args[1]
	flags := flag.NewFlagSet(mode, flag.ExitOnError)
	size := flags.Int("size", 16, "payload bytes")
	msgs := flags.Int("msgs", 1000000, "messages")
	pubs := flags.Int("pubs", 1, "publishers")
	subs := flags.Int("subs", 1, "subscribers")
	queue := flags.String("queue", "", "queue group of the subscribers")
	server := flags.String("server", "127.0.0.1:4222", "host:port")
	serverPid := flags.Int("server-pid", 0, "server pid, for its CPU time")
	rate := flags.Float64("rate", 0, "req: round trips started per second (0: back to back)")
	flags.Bool("json", true, "print the JSON report (always)")
	if err := flags.Parse(os.Args[2:]); err != nil {
		fail("%v", err)
	}
	url := "nats://" + *server
	payload := make([]byte, *size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	r := report{Mode: mode, Client: "nats.go " + nats.Version, PayloadBytes: *size}
	if *queue != "" {
		r.Queue = queue
	}
	var seconds float64
	var cpuBefore, cpuAfter, clientBefore, clientAfter uint64
	var cpuOK bool
	switch mode {
	case "pub":
		r.Publishers = *pubs
		conns := make([]*nats.Conn, *pubs)
		for i := range conns {
			conns[i] = connect(url)
		}
		cpuBefore, cpuOK = serverCPUNs(*serverPid)
		clientBefore, _ = serverCPUNs(os.Getpid())
		start := time.Now()
		var wg sync.WaitGroup
		for i, nc := range conns {
			share := *msgs / *pubs
			if i < *msgs%*pubs {
				share++
			}
			wg.Add(1)
			go func(nc *nats.Conn, share int) {
				defer wg.Done()
				for j := 0; j < share; j++ {
					if err := nc.Publish("bench", payload); err != nil {
						fail("publish: %v", err)
					}
				}
				// FlushTimeout round-trips a PING: everything before it was handled.
				if err := nc.FlushTimeout(60 * time.Second); err != nil {
					fail("flush: %v", err)
				}
			}(nc, share)
		}
		wg.Wait()
		seconds = time.Since(start).Seconds()
		cpuAfter, _ = serverCPUNs(*serverPid)
		clientAfter, _ = serverCPUNs(os.Getpid())
		r.Published = uint64(*msgs)
		r.PublishRateMsgs = float64(*msgs) / seconds
		r.PayloadRateBytes = r.PublishRateMsgs * float64(*size)
	case "pubsub":
		r.Publishers, r.Subscribers = 1, *subs
		var delivered uint64
		expected := uint64(*msgs) * uint64(*subs)
		if *queue != "" {
			expected = uint64(*msgs)
		}
		done := make(chan struct{})
		var closeOnce sync.Once
		handler := func(*nats.Msg) {
			if atomic.AddUint64(&delivered, 1) == expected {
				closeOnce.Do(func() { close(done) })
			}
		}
		subConns := make([]*nats.Conn, *subs)
		for i := range subConns {
			nc := connect(url)
			var err error
			var sub *nats.Subscription
			if *queue != "" {
				sub, err = nc.QueueSubscribe("bench", *queue, handler)
			} else {
				sub, err = nc.Subscribe("bench", handler)
			}
			if err != nil {
				fail("subscribe: %v", err)
			}
			// A slow reader is the benchmark's finding, not an error: no client-side limit.
			if err := sub.SetPendingLimits(-1, -1); err != nil {
				fail("pending limits: %v", err)
			}
			if err := nc.Flush(); err != nil {
				fail("flush: %v", err)
			}
			subConns[i] = nc
		}
		pub := connect(url)
		cpuBefore, cpuOK = serverCPUNs(*serverPid)
		clientBefore, _ = serverCPUNs(os.Getpid())
		start := time.Now()
		go func() {
			for j := 0; j < *msgs; j++ {
				if err := pub.Publish("bench", payload); err != nil {
					fail("publish: %v", err)
				}
			}
			if err := pub.FlushTimeout(60 * time.Second); err != nil {
				fail("flush: %v", err)
			}
		}()
		last := uint64(0)
		for waiting := true; waiting; {
			select {
			case <-done:
				waiting = false
			case <-time.After(30 * time.Second):
				now := atomic.LoadUint64(&delivered)
				if now == last {
					waiting = false
				}
				last = now
			}
		}
		seconds = time.Since(start).Seconds()
		cpuAfter, _ = serverCPUNs(*serverPid)
		clientAfter, _ = serverCPUNs(os.Getpid())
		r.Published = uint64(*msgs)
		r.Delivered = atomic.LoadUint64(&delivered)
		r.ExpectedDeliveries = expected
		r.PublishRateMsgs = float64(*msgs) / seconds
		r.DeliveryRateMsgs = float64(r.Delivered) / seconds
		r.PayloadRateBytes = r.DeliveryRateMsgs * float64(*size)
	case "req":
		r.Publishers, r.Subscribers = 1, 1
		responder := connect(url)
		if _, err := responder.Subscribe("bench.req", func(m *nats.Msg) {
			if err := m.Respond(m.Data); err != nil {
				fail("respond: %v", err)
			}
		}); err != nil {
			fail("subscribe: %v", err)
		}
		if err := responder.Flush(); err != nil {
			fail("flush: %v", err)
		}
		requester := connect(url)
		samples := make([]float64, 0, *msgs)
		cpuBefore, cpuOK = serverCPUNs(*serverPid)
		clientBefore, _ = serverCPUNs(os.Getpid())
		start := time.Now()
		var interval time.Duration
		if *rate > 0 {
			interval = time.Duration(float64(time.Second) / *rate)
		}
		for j := 0; j < *msgs; j++ {
			if interval > 0 {
				if wait := time.Until(start.Add(time.Duration(j) * interval)); wait > 0 {
					time.Sleep(wait)
				}
			}
			sent := time.Now()
			if _, err := requester.Request("bench.req", payload, 10*time.Second); err != nil {
				fail("request: %v", err)
			}
			samples = append(samples, float64(time.Since(sent).Nanoseconds())/1000)
		}
		seconds = time.Since(start).Seconds()
		cpuAfter, _ = serverCPUNs(*serverPid)
		clientAfter, _ = serverCPUNs(os.Getpid())
		sort.Float64s(samples)
		at := func(q float64) float64 { return samples[int(q*float64(len(samples)-1))] }
		r.LatencyUs = &latency{P50: at(0.5), P90: at(0.9), P99: at(0.99), P999: at(0.999),
			Max: samples[len(samples)-1], Count: uint64(len(samples))}
		r.Published, r.Delivered, r.ExpectedDeliveries = uint64(*msgs), uint64(*msgs), uint64(*msgs)
		r.PublishRateMsgs = float64(*msgs) / seconds
		r.DeliveryRateMsgs = r.PublishRateMsgs
		r.PayloadRateBytes = r.PublishRateMsgs * float64(*size)
	default:
		fail("unknown mode %q (pub, pubsub, req)", mode)
	}
	r.Seconds = seconds
	if cpuOK && cpuAfter >= cpuBefore {
		cpu := float64(cpuAfter-cpuBefore) / 1e9
		r.ServerCPUSeconds = &cpu
		per := r.Delivered
		if per == 0 {
			per = r.Published
		}
		if per > 0 {
			ns := cpu * 1e9 / float64(per)
			r.ServerCPUNsPerMsg = &ns
		}
	}
	if per := r.Published; per > 0 && clientAfter > clientBefore {
		// This process's own CPU (every thread) over the measured part, per message published:
		// what the server's way of reading costs the client.
		ns := float64(clientAfter-clientBefore) / float64(per)
		r.ClientCPUNsPerMsg = &ns
	}
	out, err := json.Marshal(r)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Println(string(out))
}
