"""The Python side of `externalscaler.proto`: message classes and the service stub and servicer.

The bindings are compiled from the .proto when this module is first imported, by grpcio-tools'
`grpc.protos_and_services` (protoc linked into the wheel, no code generation step, nothing
generated kept in the tree). The .proto stays the one definition of the wire contract; a
generated `_pb2.py` checked in could drift from it, and one generated at build time would need
protoc on every machine that installs the package. The .proto ships as package data and is
found on `sys.path` like the package itself.

Importing this module is the only way the scaler, the tests' external scaler and the benchmark
reach the protocol.
"""

from __future__ import annotations

from typing import Any

import grpc

PROTO = "scalers/external/externalscaler.proto"
SERVICE = "externalscaler.ExternalScaler"

messages: Any
services: Any
messages, services = grpc.protos_and_services(PROTO)

ScaledObjectRef: Any = messages.ScaledObjectRef
IsActiveResponse: Any = messages.IsActiveResponse
GetMetricSpecResponse: Any = messages.GetMetricSpecResponse
MetricSpec: Any = messages.MetricSpec
GetMetricsRequest: Any = messages.GetMetricsRequest
GetMetricsResponse: Any = messages.GetMetricsResponse
MetricValue: Any = messages.MetricValue
ExternalScalerStub: Any = services.ExternalScalerStub
ExternalScalerServicer: Any = services.ExternalScalerServicer
add_servicer: Any = services.add_ExternalScalerServicer_to_server
