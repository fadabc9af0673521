"""KEDA's vocabulary, named once: API groups, resources, labels, annotations, the finalizer.

Users arrive with objects written for KEDA, and KEDA's tools (kubectl columns, dashboards)
look for these exact strings; both processes import them from here.
"""

from __future__ import annotations

from adapter.kube.resources import Resource

KEDA_GROUP = "keda.sh"
LEGACY_GROUP = "keda.k8s.io"  # the 2019 format
KEDA_VERSION = "v1alpha1"
KEDA_GROUPS = (KEDA_GROUP, LEGACY_GROUP)

SCALED_OBJECTS = Resource(KEDA_GROUP, KEDA_VERSION, "scaledobjects", "ScaledObject")
LEGACY_SCALED_OBJECTS = Resource(LEGACY_GROUP, KEDA_VERSION, "scaledobjects", "ScaledObject")
TRIGGER_AUTHENTICATIONS = Resource(KEDA_GROUP, KEDA_VERSION, "triggerauthentications", "TriggerAuthentication")
CLUSTER_TRIGGER_AUTHENTICATIONS = Resource(KEDA_GROUP, KEDA_VERSION, "clustertriggerauthentications",
                                           "ClusterTriggerAuthentication", namespaced=False)
SCALED_JOBS = Resource(KEDA_GROUP, KEDA_VERSION, "scaledjobs", "ScaledJob")


def scaled_objects_of(group: str) -> Resource:
    """The ScaledObject resource of `group` (keda.sh or the 2019 keda.k8s.io)."""
    return LEGACY_SCALED_OBJECTS if group == LEGACY_GROUP else SCALED_OBJECTS


SCALED_OBJECT_LABEL = "scaledobject.keda.sh/name"  # the HPA's metric selector, and a label on the object
LEGACY_ROUTE_LABEL = "deploymentName"  # the 2019 format's metric selector
FINALIZER = "finalizer.keda.sh"
HPA_NAME_PREFIX = "keda-hpa-"

# ScaledJobs: the label that selects a ScaledJob's Jobs (and, in their pod template, its Pods),
# the annotation recording the ScaledJob generation a Job was made from, and the annotation
# listing ScaledJob labels not copied onto its Jobs. A 2019 `scaleType: job` ScaledObject
# labelled its Jobs and Pods `scaledobject=<name>` instead.
SCALED_JOB_LABEL = "scaledjob.keda.sh/name"
LEGACY_JOB_LABEL = "scaledobject"
JOB_GENERATION = "scaledjob.keda.sh/generation"
JOB_EXCLUDED_LABELS = "scaledjob.keda.sh/job-excluded-labels"

PAUSED = "autoscaling.keda.sh/paused"
PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"
PAUSED_SCALE_IN = "autoscaling.keda.sh/paused-scale-in"
PAUSED_SCALE_OUT = "autoscaling.keda.sh/paused-scale-out"
FORCE_ACTIVATION = "autoscaling.keda.sh/force-activation"
TRANSFER_HPA_OWNERSHIP = "scaledobject.keda.sh/transfer-hpa-ownership"
