"""external and external-push: parameters (KEDA's table and more), the wire contract, and answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor

from adapter.certs import new_ca
from scalers.base import MetricSpec
from scalers.external import grpc_protocol
from scalers.external.channels import ChannelKey
from scalers.external.grpc_scaler import ExternalScaler, spec_of, value_of
from scalers.external.specs import SpecError
from scalers.params import ParameterError, TriggerParams, secret_values

CA = new_ca("external-unit").cert_pem.decode()
SCALER = ExternalScaler()


def parse(metadata: dict[str, str], auth: dict[str, str] | None = None, env: dict[str, str] | None = None,
          trigger_type: str = "external") -> Any:
    return SCALER.parse(trigger_type, TriggerParams(metadata, auth or {}, env or {}, "ns", "so"))


@pytest.mark.parametrize("metadata, auth, channel", [
    # KEDA's testExternalScalerMetadata: all properly formed (a client cert without its key is not used)
    ({"scalerAddress": "myservice", "test1": "7", "test2": "SAMPLE_CREDS", "enableTLS": "true",
      "insecureSkipVerify": "true"}, {"caCert": CA, "tlsClientCert": "CERT"},
     ChannelKey("myservice", True, CA.strip(), "CERT", None)),
    ({"scalerAddress": "scaler.ns:6000"}, {}, ChannelKey("scaler.ns:6000")),
    ({"scalerAddress": "s:1", "enableTLS": "true"}, {}, ChannelKey("s:1", True)),
    ({"scalerAddress": "s:1"}, {"caCert": CA}, ChannelKey("s:1", True, CA.strip())),
    ({"scalerAddress": "s:1"}, {"tlsClientCert": "C", "tlsClientKey": "K"}, ChannelKey("s:1", True, None, "C", "K")),
    ({"scalerAddress": "s:1", "unsafeSsl": "false"}, {}, ChannelKey("s:1")),
])
def test_channel(metadata: dict[str, str], auth: dict[str, str], channel: ChannelKey) -> None:
    config = parse(metadata, auth)
    assert config.channel == channel
    assert SCALER.server_key(config) == channel


def test_tls_cert_file_is_a_ca_file(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_text(CA)
    assert parse({"scalerAddress": "s:1", "tlsCertFile": str(path)}).channel == ChannelKey("s:1", True, CA)


def test_the_whole_metadata_goes_to_the_scaler_with_from_env_resolved() -> None:
    config = parse({"scalerAddress": "s:1", "queue": "orders", "passwordFromEnv": "PW", "otherFromEnv": "UNSET",
                    "spaced": " kept as written "}, env={"PW": "Env-s3cret"}, trigger_type="external-push")
    ref = config.ref()
    assert (ref.name, ref.namespace) == ("so", "ns")
    assert dict(ref.scalerMetadata) == {"scalerAddress": "s:1", "queue": "orders", "passwordFromEnv": "Env-s3cret",
                                        "spaced": " kept as written "}
    assert config.push and "Env-s3cret" in secret_values(config) and "Env-s3cret" not in repr(config)


def test_both_types_share_one_channel_per_address() -> None:
    plain, push = parse({"scalerAddress": "s:1"}), parse({"scalerAddress": "s:1"}, trigger_type="external-push")
    assert SCALER.server_key(plain) == SCALER.server_key(push) and plain != push


def test_client_key_is_a_secret() -> None:
    config = parse({"scalerAddress": "s:1"}, {"tlsClientCert": "C", "tlsClientKey": "Private-key-text"})
    assert "Private-key-text" in secret_values(config) and "Private-key-text" not in repr(config)


@pytest.mark.parametrize("metadata, auth, error", [
    ({}, {}, 'missing required parameter "scalerAddress"'),  # KEDA: no metadata
    ({"test1": "1", "test2": "SAMPLE_CREDS"}, {}, 'missing required parameter "scalerAddress"'),
    ({"scalerAddress": "s:1", "enableTLS": "maybe"}, {}, 'parameter "enableTLS" value "maybe" must be a boolean'),
    ({"scalerAddress": "s:1", "unsafeSsl": "true"}, {}, "unsafeSsl is not supported for external scalers"),
    ({"scalerAddress": "s:1", "tlsCertFile": "/no/such/file.pem"}, {}, 'parameter "tlsCertFile": cannot read'),
])
def test_errors(metadata: dict[str, str], auth: dict[str, str], error: str) -> None:
    with pytest.raises(ParameterError, match=error.replace("(", r"\(")):
        parse(metadata, auth)


def test_metric_waits_for_the_spec_outside_a_loop() -> None:
    config = parse({"scalerAddress": "127.0.0.1:1"})
    with pytest.raises(ParameterError, match=r"external scaler at 127.0.0.1:1: waiting for the metric spec"):
        SCALER.metric(config)


@pytest.mark.parametrize("specs, expected", [
    ([{"metricName": "q", "targetSizeFloat": 2.5, "targetSize": 9}], MetricSpec(name="q", target=2.5)),
    ([{"metricName": "q", "targetSize": 9}], MetricSpec(name="q", target=9.0)),
    ([{"metricName": "first", "targetSize": 1}, {"metricName": "second", "targetSize": 2}],
     MetricSpec(name="first", target=1.0)),
])
def test_spec_of(specs: list[dict[str, Any]], expected: MetricSpec) -> None:
    response = grpc_protocol.GetMetricSpecResponse(metricSpecs=[grpc_protocol.MetricSpec(**s) for s in specs])
    assert spec_of(response) == expected


@pytest.mark.parametrize("specs, error", [([], "no metric spec"), ([{"targetSize": 1}], "without metricName")])
def test_spec_of_errors(specs: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(SpecError, match=error):
        spec_of(grpc_protocol.GetMetricSpecResponse(metricSpecs=[grpc_protocol.MetricSpec(**s) for s in specs]))


def test_value_is_the_sum_of_the_values_float_first() -> None:
    response = grpc_protocol.GetMetricsResponse(metricValues=[
        grpc_protocol.MetricValue(metricName="q", metricValue=3),
        grpc_protocol.MetricValue(metricName="q", metricValueFloat=1.5, metricValue=99)])
    assert value_of(response) == 4.5


# KEDA's externalscaler.proto, field by field: (message, field, number, type, label)
WIRE = [
    ("ScaledObjectRef", "name", 1, descriptor.FieldDescriptor.TYPE_STRING),
    ("ScaledObjectRef", "namespace", 2, descriptor.FieldDescriptor.TYPE_STRING),
    ("ScaledObjectRef", "scalerMetadata", 3, descriptor.FieldDescriptor.TYPE_MESSAGE),  # map<string, string>
    ("IsActiveResponse", "result", 1, descriptor.FieldDescriptor.TYPE_BOOL),
    ("GetMetricSpecResponse", "metricSpecs", 1, descriptor.FieldDescriptor.TYPE_MESSAGE),
    ("MetricSpec", "metricName", 1, descriptor.FieldDescriptor.TYPE_STRING),
    ("MetricSpec", "targetSize", 2, descriptor.FieldDescriptor.TYPE_INT64),
    ("MetricSpec", "targetSizeFloat", 3, descriptor.FieldDescriptor.TYPE_DOUBLE),
    ("GetMetricsRequest", "scaledObjectRef", 1, descriptor.FieldDescriptor.TYPE_MESSAGE),
    ("GetMetricsRequest", "metricName", 2, descriptor.FieldDescriptor.TYPE_STRING),
    ("GetMetricsResponse", "metricValues", 1, descriptor.FieldDescriptor.TYPE_MESSAGE),
    ("MetricValue", "metricName", 1, descriptor.FieldDescriptor.TYPE_STRING),
    ("MetricValue", "metricValue", 2, descriptor.FieldDescriptor.TYPE_INT64),
    ("MetricValue", "metricValueFloat", 3, descriptor.FieldDescriptor.TYPE_DOUBLE),
]


def test_the_wire_contract_is_kedas() -> None:
    file = grpc_protocol.messages.DESCRIPTOR
    assert file.package == "externalscaler"
    found = [(m.name, f.name, f.number, f.type) for m in file.message_types_by_name.values() for f in m.fields]
    assert sorted(found) == sorted(WIRE)
    service = file.services_by_name["ExternalScaler"]
    methods = {m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods}
    assert methods == {
        "IsActive": ("ScaledObjectRef", "IsActiveResponse", False),
        "StreamIsActive": ("ScaledObjectRef", "IsActiveResponse", True),
        "GetMetricSpec": ("ScaledObjectRef", "GetMetricSpecResponse", False),
        "GetMetrics": ("GetMetricsRequest", "GetMetricsResponse", False),
    }
    assert f"{file.package}.{service.name}" == grpc_protocol.SERVICE
    # bytes as any protobuf implementation of KEDA's .proto writes them
    request = grpc_protocol.GetMetricsRequest(scaledObjectRef=grpc_protocol.ScaledObjectRef(name="a", namespace="b"),
                                         metricName="m")
    assert request.SerializeToString() == b"\n\x06\n\x01a\x12\x01b\x12\x01m"
