"""A schema-only Terraform provider for the tests: real Terraform core checks the configuration against it.

It speaks the plugin protocol (tfplugin5 over gRPC, the go-plugin handshake on stdout) and serves a
schema built by tfschema.py from a provider's jsii assembly. It validates nothing itself: Terraform core
type-checks every block, argument and reference against the schema. It plans by returning the proposed
state with every unset computed attribute unknown, and reads a data source by filling its unset computed
attributes with placeholders (PLACEHOLDERS, else "placeholder-<attribute>", 0, false or empty).
It never applies anything. The jsii assembly does not say which optional arguments Google fills in when
they are unset (optional and computed in the provider): those plan as null here, where a real plan shows
them unknown.

    python tfprovider.py SCHEMA.json   (run by Terraform, found through a CLI config's dev_overrides)
    python tfprovider.py --compile SCHEMA.json   (at install time: SCHEMA.pb, the schema answer ready-made)
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import msgpack
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tfplugin_proto import tfplugin5_5_pb2 as pb
from tfplugin_proto import tfplugin5_5_pb2_grpc as pb_grpc

# Documented values a data source reads as, where a generic placeholder would not be valid downstream.
PLACEHOLDERS: dict[tuple[str, str], Any] = {
    ("google_project", "number"): "123456789012",
    ("google_project", "name"): "placeholder-project",
}

_NESTING = {
    "single": pb.Schema.NestedBlock.SINGLE,
    "list": pb.Schema.NestedBlock.LIST,
    "set": pb.Schema.NestedBlock.SET,
    "map": pb.Schema.NestedBlock.MAP,
}


class Unknown:
    """A value known only after apply (cty's unknown, msgpack extension 0)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


def _ext_hook(code: int, data: bytes) -> Any:
    if code in (0, 12):  # unknown, and unknown with refinements
        return UNKNOWN
    return msgpack.ExtType(code, data)


def _default(value: Any) -> Any:
    if isinstance(value, Unknown):
        return msgpack.ExtType(0, b"\x00")
    raise TypeError(f"cannot encode {value!r}")


def decode(dv: pb.DynamicValue) -> Any:
    if dv.msgpack:
        return msgpack.unpackb(dv.msgpack, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    return json.loads(dv.json) if dv.json else None


def encode(value: Any) -> pb.DynamicValue:
    return pb.DynamicValue(msgpack=msgpack.packb(value, default=_default, use_bin_type=True))


def _block_pb(block: dict[str, Any]) -> pb.Schema.Block:
    attributes = [
        pb.Schema.Attribute(
            name=name,
            type=json.dumps(attr["type"]).encode(),
            required=attr.get("required", False),
            optional=attr.get("optional", False),
            computed=attr.get("computed", False),
        )
        for name, attr in sorted(block["attributes"].items())
    ]
    block_types = [
        pb.Schema.NestedBlock(
            type_name=name,
            block=_block_pb(nested["block"]),
            nesting=_NESTING[nested["nesting_mode"]],
            min_items=nested.get("min_items", 0),
            max_items=nested.get("max_items", 0),
        )
        for name, nested in sorted(block["block_types"].items())
    ]
    return pb.Schema.Block(attributes=attributes, block_types=block_types)


def _schema_pb(schema: dict[str, Any]) -> pb.Schema:
    return pb.Schema(version=schema.get("version", 0), block=_block_pb(schema["block"]))


def _walk(block: dict[str, Any], value: Any, fill: Any) -> Any:
    """value with each unset computed attribute replaced by fill(name, type), through nested blocks."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for name, attr in block["attributes"].items():
        if attr.get("computed") and out.get(name) is None:
            out[name] = fill(name, attr["type"])
    for name, nested in block["block_types"].items():
        inner = out.get(name)
        if isinstance(inner, list):
            out[name] = [_walk(nested["block"], v, fill) for v in inner]
        elif isinstance(inner, dict) and nested["nesting_mode"] == "map":
            out[name] = {k: _walk(nested["block"], v, fill) for k, v in inner.items()}
        elif isinstance(inner, dict):
            out[name] = _walk(nested["block"], inner, fill)
    return out


def _placeholder(type_name: str) -> Any:
    def fill(name: str, cty: Any) -> Any:
        if (type_name, name) in PLACEHOLDERS:
            return PLACEHOLDERS[(type_name, name)]
        kind = cty if isinstance(cty, str) else cty[0]
        return {"string": f"placeholder-{name}", "number": 0, "bool": False, "map": {}, "object": None}.get(
            kind, [] if kind in ("list", "set") else None
        )

    return fill


def schema_response(schema: dict[str, Any]) -> pb.GetProviderSchema.Response:
    return pb.GetProviderSchema.Response(
        provider=_schema_pb(schema["provider"]),
        resource_schemas={k: _schema_pb(v) for k, v in schema["resource_schemas"].items()},
        data_source_schemas={k: _schema_pb(v) for k, v in schema["data_source_schemas"].items()},
    )


class Provider(pb_grpc.ProviderServicer):
    def __init__(self, schema: dict[str, Any], response: pb.GetProviderSchema.Response) -> None:
        self.schema = schema
        self._response = response

    def GetSchema(self, request, context):  # noqa: N802 (protocol names)
        return self._response

    def PrepareProviderConfig(self, request, context):  # noqa: N802
        return pb.PrepareProviderConfig.Response(prepared_config=request.config)

    def ValidateResourceTypeConfig(self, request, context):  # noqa: N802
        return pb.ValidateResourceTypeConfig.Response()

    def ValidateDataSourceConfig(self, request, context):  # noqa: N802
        return pb.ValidateDataSourceConfig.Response()

    def Configure(self, request, context):  # noqa: N802
        return pb.Configure.Response()

    def UpgradeResourceState(self, request, context):  # noqa: N802
        return pb.UpgradeResourceState.Response(upgraded_state=pb.DynamicValue(json=request.raw_state.json))

    def ReadResource(self, request, context):  # noqa: N802
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request, context):  # noqa: N802
        proposed = decode(request.proposed_new_state)
        if proposed is None:  # destroy
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state)
        block = self.schema["resource_schemas"][request.type_name]["block"]
        prior = decode(request.prior_state) or {}

        def fill(name: str, _cty: Any) -> Any:
            return prior.get(name) if prior.get(name) is not None else UNKNOWN

        planned = _walk(block, proposed, fill)
        return pb.PlanResourceChange.Response(planned_state=encode(planned), legacy_type_system=True)

    def ApplyResourceChange(self, request, context):  # noqa: N802
        diagnostic = pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary="This test provider does not apply")
        return pb.ApplyResourceChange.Response(diagnostics=[diagnostic])

    def ReadDataSource(self, request, context):  # noqa: N802
        block = self.schema["data_source_schemas"][request.type_name]["block"]
        state = _walk(block, decode(request.config), _placeholder(request.type_name))
        return pb.ReadDataSource.Response(state=encode(state))

    def Stop(self, request, context):  # noqa: N802
        return pb.Stop.Response()


def serve(schema_file: Path) -> None:
    schema = json.loads(schema_file.read_text())
    compiled = schema_file.with_suffix(".pb")  # the GetProviderSchema answer, made by --compile
    if compiled.exists() and compiled.stat().st_mtime >= schema_file.stat().st_mtime:
        response = pb.GetProviderSchema.Response.FromString(compiled.read_bytes())
    else:
        response = schema_response(schema)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ProviderServicer_to_server(Provider(schema, response), server)
    checker = health.HealthServicer()
    checker.set("plugin", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)

    # go-plugin's controller: Shutdown (an empty message both ways) ends the process at once.
    def shutdown(_request: bytes, _context: Any) -> bytes:
        threading.Thread(target=server.stop, args=(0,)).start()
        return b""

    handler = grpc.unary_unary_rpc_method_handler(shutdown, lambda b: b, lambda b: b)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("plugin.GRPCController", {"Shutdown": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # go-plugin handshake: core protocol | app protocol | network | address | protocol
    print(f"1|5|tcp|127.0.0.1:{port}|grpc", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    if sys.argv[1] == "--compile":  # SCHEMA.json -> SCHEMA.pb, read at start instead of building it each time
        source = Path(sys.argv[2])
        source.with_suffix(".pb").write_bytes(
            schema_response(json.loads(source.read_text())).SerializeToString()
        )
    else:
        serve(Path(sys.argv[1]))
