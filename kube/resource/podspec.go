package resource

import "strings"

// PodSpecPath is where an object of kind keeps the spec of the pods it
// runs, as the field names from the object's root: spec.template.spec for
// Deployments, DaemonSets, StatefulSets, ReplicaSets, ReplicationControllers
// and Jobs, spec.jobTemplate.spec.template.spec for CronJobs, and spec for
// Pods. The kind is matched in any case ("Deployment" or "deployment"). It
// is nil for kinds that run no pods. The slice is the caller's to keep.
func PodSpecPath(kind string) []string {
	switch strings.ToLower(kind) {
	case "deployment", "daemonset", "statefulset", "replicaset", "replicationcontroller", "job":
		return []string{"spec", "template", "spec"}
	case "cronjob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	case "pod":
		return []string{"spec"}
	}
	return nil
}
