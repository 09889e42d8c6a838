"""The component package's plugin, started as Pulumi starts it and driven over gRPC as the engine drives it.

`PackagePlugin` runs `python provider <engine address>` (what `pulumi package add`, `preview` and `up` run), and
serves in the test process what the plugin calls back: the engine (logs, root resource) and a resource monitor
(Pulumi's mock monitor with the lab's mocks, recording every registration, with URNs as the engine forms them).
`construct` sends a ConstructRequest exactly as the engine sends one for a TypeScript, Go or YAML program: the
inputs as a protobuf Struct in the schema's camelCase (numbers are doubles on the wire), under a stack parent.

    with PackagePlugin() as plugin:
        answer = plugin.construct("FalcoEksLab", {"cluster": {"clusterName": "lab"}})
        answer.error            # None, or the gRPC error: code, message, and its property errors
        answer.recorded         # the registrations (pulumi_mocks.Recorded)
        answer.state            # the component's outputs as the engine receives them
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import (
    engine_pb2,
    engine_pb2_grpc,
    errors_pb2,
    provider_pb2,
    provider_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
    status_pb2,
)
from pulumi_mocks import PROJECT, STACK, LabMocks, Recorded, RecordingMonitor

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "provider"
STACK_URN = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{STACK}"


@dataclass
class PropertyError:
    path: str
    reason: str


@dataclass
class ConstructError:
    code: grpc.StatusCode
    message: str
    properties: list[PropertyError] = field(default_factory=list)

    def __str__(self) -> str:
        details = "; ".join(f"{p.path}: {p.reason}" for p in self.properties)
        return f"{self.code.name}: {self.message} {details}".strip()


@dataclass
class Constructed:
    recorded: Recorded
    error: ConstructError | None = None
    urn: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    logs: list[tuple[int, str]] = field(default_factory=list)


class _Engine(engine_pb2_grpc.EngineServicer):
    def __init__(self) -> None:
        self.logs: list[tuple[int, str]] = []

    def Log(self, request, context):  # noqa: N802 (gRPC names)
        self.logs.append((request.severity, request.message))
        return empty_pb2.Empty()

    def GetRootResource(self, request, context):  # noqa: N802
        return engine_pb2.GetRootResourceResponse(urn=STACK_URN)

    def SetRootResource(self, request, context):  # noqa: N802
        return engine_pb2.SetRootResourceResponse()


class _Monitor(resource_pb2_grpc.ResourceMonitorServicer):
    """Pulumi's MockMonitor behind a gRPC server; swapped for a fresh one per construct."""

    def __init__(self) -> None:
        self.monitor: RecordingMonitor | None = None

    def _call(self, method: str, request: Any) -> Any:
        assert self.monitor is not None, "no construct under way"
        return getattr(self.monitor, method)(request)

    def SupportsFeature(self, request, context):  # noqa: N802
        answer = self._call("SupportsFeature", request)
        return resource_pb2.SupportsFeatureResponse(hasSupport=answer.hasSupport)

    def GetDeploymentInfo(self, request, context):  # noqa: N802
        return self._call("GetDeploymentInfo", request)

    def RegisterResource(self, request, context):  # noqa: N802
        return self._call("RegisterResource", request)

    def RegisterResourceOutputs(self, request, context):  # noqa: N802
        return self._call("RegisterResourceOutputs", request)

    def ReadResource(self, request, context):  # noqa: N802
        return self._call("ReadResource", request)

    def Invoke(self, request, context):  # noqa: N802
        return self._call("Invoke", request)

    def RegisterPackage(self, request, context):  # noqa: N802
        return self._call("RegisterPackage", request)

    def SignalAndWaitForShutdown(self, request, context):  # noqa: N802
        return empty_pb2.Empty()


def _struct(inputs: dict[str, Any]) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(inputs, {}))
    finally:
        loop.close()


def _error(err: grpc.RpcError) -> ConstructError:
    properties: list[PropertyError] = []
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            found = errors_pb2.InputPropertiesError()
            if detail.Unpack(found):
                properties += [PropertyError(e.property_path, e.reason) for e in found.errors]
    return ConstructError(err.code(), err.details() or "", properties)


class PackagePlugin:
    """The plugin process and the engine side it talks to; a context manager."""

    def __init__(self) -> None:
        self.engine = _Engine()
        self.monitor = _Monitor()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        engine_pb2_grpc.add_EngineServicer_to_server(self.engine, self.server)
        resource_pb2_grpc.add_ResourceMonitorServicer_to_server(self.monitor, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.process: subprocess.Popen[str] | None = None
        self.channel: grpc.Channel | None = None

    def __enter__(self) -> PackagePlugin:
        self.server.start()
        self.process = subprocess.Popen(
            [sys.executable, str(PLUGIN), f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT.parent,  # the plugin finds the components from its own location, not the working directory
        )
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.__exit__(None, None, None)
            raise RuntimeError(f"the plugin did not start: {self.process.stderr.read() if self.process.stderr else ''}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.provider = provider_pb2_grpc.ResourceProviderStub(self.channel)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        self.server.stop(grace=None)

    def schema(self) -> str:
        return str(self.provider.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=60).schema)

    def construct(
        self,
        component: str,
        inputs: dict[str, Any],
        mocks: LabMocks | None = None,
        providers: dict[str, str] | None = None,
        name: str = "from-ts",
        preview: bool = False,
        dependencies: dict[str, list[str]] | None = None,
    ) -> Constructed:
        """Construct `falco-eks:index:<component>` named `name` from `inputs` (camelCase, as a program sends them);
        `dependencies` names, per input, the resources its value came from (the input then arrives as an output)."""
        recorded = Recorded()
        mocks = mocks or LabMocks()
        monitor = RecordingMonitor(mocks, recorded, stack=STACK, project=PROJECT)
        for reference in (providers or {}).values():
            # The program's providers exist already: the plugin reads them back by URN (pulumi:pulumi:getResource).
            urn, _, provider_id = reference.rpartition("::")
            monitor.resources[urn] = monitor.ResourceRegistration(urn, provider_id, {})
        self.monitor.monitor = monitor
        self.engine.logs = []
        request = provider_pb2.ConstructRequest(
            project=PROJECT,
            stack=STACK,
            dryRun=preview,
            parallel=8,
            monitorEndpoint=f"127.0.0.1:{self.port}",
            type=f"falco-eks:index:{component}",
            name=name,
            parent=STACK_URN,
            inputs=_struct(inputs),
            providers=providers or {},
            inputDependencies={
                key: provider_pb2.ConstructRequest.PropertyDependencies(urns=urns)
                for key, urns in (dependencies or {}).items()
            },
        )
        result = Constructed(recorded, logs=self.engine.logs)
        try:
            answer = self.provider.Construct(request, timeout=120)
        except grpc.RpcError as err:
            result.error = _error(err)
            return result
        finally:
            recorded.invokes = mocks.invokes
        result.urn = answer.urn
        result.state = rpc.deserialize_properties(answer.state, keep_unknowns=True)
        return result
