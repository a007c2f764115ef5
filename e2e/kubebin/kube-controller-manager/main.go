// Command kube-controller-manager is the upstream controller manager. The e2e
// control plane needs it for namespace deletion, Deployment status and
// ownerReference garbage collection.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
