"""eventscale adapter: the external.metrics.k8s.io server and, beside it, the controller.

Layers, each importing only those below it: `api` (HTTP surface) and `auth` -> `store`
(metric values) -> `catalog` (objects) -> `scalers` (a separate package that never imports us).
"""
