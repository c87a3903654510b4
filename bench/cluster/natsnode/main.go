// Command natsnode runs one node of a NATS JetStream cluster, built from
// the nats-server module Omni already embeds, so the cluster test and
// bench need no separately installed nats-server:
//
//	natsnode -name n1 -port 4222 -cluster-port 6222 -routes nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224 -store /tmp/n1
//
// It runs until SIGINT or SIGTERM (or kill -9, which is the point).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	name := flag.String("name", "n1", "server name, unique in the cluster")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 4222, "client port")
	clusterPort := flag.Int("cluster-port", 6222, "route port")
	routes := flag.String("routes", "", "comma-separated nats://host:port of every node's route port")
	store := flag.String("store", "", "JetStream store directory")
	maxStore := flag.Int64("max-store-mb", 4096, "JetStream disk limit in MB")
	profPort := flag.Int("prof-port", 0, "serve net/http/pprof on this port (0: off)")
	flag.Parse()
	if *store == "" {
		fmt.Fprintln(os.Stderr, "natsnode: -store is required")
		os.Exit(2)
	}
	opts := &server.Options{
		ServerName:         *name,
		Host:               *host,
		Port:               *port,
		JetStream:          true,
		StoreDir:           *store,
		JetStreamMaxStore:  *maxStore << 20,
		JetStreamMaxMemory: 256 << 20,
		Cluster:            server.ClusterOpts{Name: "omni", Host: *host, Port: *clusterPort},
		Routes:             server.RoutesFromStr(*routes),
		ProfPort:           *profPort,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsnode:", err)
		os.Exit(2)
	}
	ns.ConfigureLogger()
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		fmt.Fprintln(os.Stderr, "natsnode: not ready in 30s")
		os.Exit(1)
	}
	ns.WaitForShutdown() // the server handles SIGINT/SIGTERM itself
}
