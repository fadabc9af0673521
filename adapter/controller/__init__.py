"""The controller sidecar: HPAs from ScaledObjects, 0 <-> 1 activation, status, events.

It runs beside the adapter (same pod, separate process) and asks the adapter over loopback for
each ScaledObject's activity, so brokers are polled once. Pure rules (`decide`, `hpa`,
`conditions`, `status`) are kept apart from what talks to Kubernetes (`guarded_api`,
`object_cache`, `leader`, `events`) and from the loop that ties them together (`queue`,
`reconciler`, `controller`).
"""
