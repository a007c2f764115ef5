package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Connect returns a Cluster for kubeconfig: the file if one is named, else
// the in-cluster configuration, else $KUBECONFIG or ~/.kube/config.
func Connect(kubeconfig string, opts ...Option) (*Cluster, error) {
	cfg, err := LoadConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return New(cfg, opts...)
}

// LoadConfig loads a REST configuration as Connect does.
func LoadConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	if cfg, err := rest.InClusterConfig(); err == nil {
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes configuration: not running in a cluster, and %v: set --kubeconfig", err)
	}
	return cfg, nil
}
