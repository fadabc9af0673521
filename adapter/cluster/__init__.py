"""Cluster mode: objects from Kubernetes watches, identities and permissions from kube-apiserver.

`client` is the one HTTP client to kube-apiserver; `watch` the list+watch loop; `source` feeds
the catalog; `authn` and `authz` delegate authentication and authorization the way the
generic apiserver does; `apiservice` optionally makes and registers serving certificates.
"""
