"""`eventscale install`, `uninstall` and `dev-cluster`: the cluster set-up a user would otherwise do with
`kubectl apply -k manifests/` and hand-written Service and APIService objects."""
