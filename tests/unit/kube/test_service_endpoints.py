"""One Service's endpoints from two narrow watches: the paths and selectors they ask for, and an
index fed by them (resources carrying a namespace and a selector) resolving the Service's port."""

from __future__ import annotations

from adapter.kube.endpoints import EndpointIndex, service_watches, strip_service, strip_slice


def test_the_watches_of_one_service_ask_for_it_alone() -> None:
    services, slices = service_watches(("monitoring", "prometheus-adapter"))
    assert (services.path, services.field_selector, services.label_selector) == (
        "/api/v1/namespaces/monitoring/services", "metadata.name=prometheus-adapter", "")
    assert (slices.path, slices.field_selector, slices.label_selector) == (
        "/apis/discovery.k8s.io/v1/namespaces/monitoring/endpointslices", "",
        "kubernetes.io/service-name=prometheus-adapter")


def test_an_index_fed_by_those_watches_resolves_the_service_port_to_ready_endpoints() -> None:
    services, slices = service_watches(("monitoring", "pa"))
    index = EndpointIndex()
    index.listed(services, [strip_service({"metadata": {"name": "pa", "namespace": "monitoring"},
                                           "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 6443}]}})])
    index.listed(slices, [strip_slice({
        "metadata": {"name": "pa-x", "namespace": "monitoring", "labels": {"kubernetes.io/service-name": "pa"}},
        "ports": [{"name": "https", "port": 6443}],
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                      {"addresses": ["10.0.0.2"], "conditions": {"ready": False}}]})])
    assert index.addresses(("monitoring", "pa"), "443") == [("10.0.0.1", 6443)]
    index.listed(slices, [])
    assert index.addresses(("monitoring", "pa"), "443") == []
