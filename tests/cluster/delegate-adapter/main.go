// Command delegate-adapter runs the testing provider of sigs.k8s.io/custom-metrics-apiserver
// (its test-adapter/provider, unchanged) in that library's API server, as a second external
// metrics adapter the e2e tests put behind ours with --delegate-to.
//
// It differs from the library's own test-adapter main in two ways only: the secure port binds
// to 127.0.0.1 by default and refuses any address that is not loopback (the tests' network
// rule), and the web service that writes custom metrics (an unauthenticated port on every
// interface in the library's main) is not started: it writes custom.metrics.k8s.io values,
// which nothing here reads. Every other flag is the library's (k8s.io/apiserver's serving,
// delegated authentication and authorization options).
package main

import (
	"context"
	"net"
	"os"

	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/cmd/options"
	testprovider "sigs.k8s.io/custom-metrics-apiserver/test-adapter/provider"
)

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()

	adapter := &basecmd.AdapterBase{Name: "delegate-adapter"}
	adapter.CustomMetricsAdapterServerOptions = options.NewCustomMetricsAdapterServerOptions()
	adapter.SecureServing.BindAddress = net.ParseIP("127.0.0.1")
	logs.AddFlags(adapter.Flags())
	if err := adapter.Flags().Parse(os.Args); err != nil {
		klog.Fatalf("unable to parse flags: %v", err)
	}
	if !adapter.SecureServing.BindAddress.IsLoopback() {
		klog.Fatalf("--bind-address %s: only loopback addresses are allowed", adapter.SecureServing.BindAddress)
	}

	client, err := adapter.DynamicClient()
	if err != nil {
		klog.Fatalf("unable to construct dynamic client: %v", err)
	}
	mapper, err := adapter.RESTMapper()
	if err != nil {
		klog.Fatalf("unable to construct discovery REST mapper: %v", err)
	}
	provider, _ := testprovider.NewFakeProvider(client, mapper) // the metric-writing web service is not served
	adapter.WithCustomMetrics(provider)
	adapter.WithExternalMetrics(provider)

	if err := adapter.Run(context.Background()); err != nil {
		klog.Fatalf("unable to run the adapter: %v", err)
	}
}
