"""A run's executions from ML Metadata, through the KFP UI's grpc-web proxy (what the KFP UI reads).

A KFP v2 task's parameter values live in ML Metadata only (the v2beta1 run API carries task states
and artifact ids, see :mod:`hp_components.kfp._status`), so ``hp-tune status`` reads them as the UI
does (kubeflow/pipelines 7b70c7b; ``ui/`` = frontend/, ``mlmd/`` = third_party/ml-metadata/ml_metadata/proto/):

M1 ui/server/app.ts: the UI server (``svc/ml-pipeline-ui``, the usual ``--host``) proxies
   ``/ml_metadata.*`` to the metadata Envoy, whose ``envoy.filters.http.grpc_web`` filter
   (manifests/kustomize/base/metadata/base/metadata-envoy-configmap.yaml) turns grpc-web into gRPC
   for ``ml_metadata.MetadataStoreService`` (mlmd/metadata_store_service.proto).
M2 grpc-web (github.com/grpc/grpc doc/PROTOCOL-WEB.md): ``POST /<package>.<Service>/<Method>``,
   ``Content-Type: application/grpc-web+proto``; the body and the answer are frames of a flag byte
   (0x00 a message, 0x80 the trailers as ``name: value`` lines), a 4-byte big-endian length and the
   bytes; ``grpc-status`` (0 = OK) and ``grpc-message`` come in the trailers or, for an answer
   without a message, in the HTTP headers.
M3 ui/src/mlmd/MlmdUtils.ts ``getKfpV2RunContext`` / ``getExecutionsFromContext`` and
   backend/src/v2/metadata/client.go (``pipelineRunContextTypeName``, ``CreateExecution``,
   ``PublishExecution``): the run is the context of type ``system.PipelineRun`` named after the run
   id; each task is an Execution in it with custom properties ``display_name`` (the task's
   ``taskInfo.name``), ``task_name``, ``inputs`` and, once it is published, ``outputs`` (structs of
   its parameter values), and ``last_known_state``.
M4 mlmd/metadata_store.proto ``Value``, ``Execution``, ``Context``, ``ListOperationOptions`` and
   mlmd/metadata_store_service.proto ``GetContextByTypeAndName{Request,Response}`` and
   ``GetExecutionsByContext{Request,Response}``: the field numbers in :func:`_messages` (only the
   fields read; the rest is skipped as unknown fields).

::

    for e in run_executions("http://localhost:8080", run_id):
        e["display_name"], e["state"], e["inputs"], e["outputs"]
"""

from __future__ import annotations

import functools
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from hp_components.kfp._errors import KfpError

__all__ = ["MlmdUnavailable", "run_executions", "RUN_CONTEXT_TYPE"]

#: M3 the context type of a KFP v2 run (backend/src/v2/metadata/client.go pipelineRunContextTypeName)
RUN_CONTEXT_TYPE = "system.PipelineRun"
SERVICE = "ml_metadata.MetadataStoreService"
PAGE = 100  # MLMD's largest page (ListOperationOptions.max_result_size)
_STATES = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED", 5: "CACHED", 6: "CANCELED"}


class MlmdUnavailable(KfpError):
    """ML Metadata cannot be read at this host (no grpc-web proxy there, or it answered an error)."""


@functools.lru_cache(maxsize=1)
def _messages() -> dict[str, Any]:
    """The message classes of the MLMD subset we read (M4), in a private descriptor pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(struct_pb2.DESCRIPTOR.serialized_pb))
    fd = descriptor_pb2.FileDescriptorProto(name="hp_components/mlmd_subset.proto", package="ml_metadata",
                                            syntax="proto2", dependency=["google/protobuf/struct.proto"])

    def message(name: str, *fields: tuple[str, int, int, str], repeated: tuple[str, ...] = ()) -> Any:
        m = fd.message_type.add(name=name)
        for fname, number, ftype, type_name in fields:
            label = F.LABEL_REPEATED if fname in repeated else F.LABEL_OPTIONAL
            m.field.add(name=fname, number=number, type=ftype, label=label, **({"type_name": type_name} if type_name else {}))
        return m

    value = message("Value", ("int_value", 1, F.TYPE_INT64, ""), ("double_value", 2, F.TYPE_DOUBLE, ""),
                    ("string_value", 3, F.TYPE_STRING, ""), ("struct_value", 4, F.TYPE_MESSAGE, ".google.protobuf.Struct"),
                    ("bool_value", 6, F.TYPE_BOOL, ""))
    value.oneof_decl.add(name="value")
    for f in value.field:
        f.oneof_index = 0
    message("Context", ("id", 1, F.TYPE_INT64, ""), ("type_id", 2, F.TYPE_INT64, ""), ("name", 3, F.TYPE_STRING, ""))
    execution = message("Execution", ("id", 1, F.TYPE_INT64, ""), ("type_id", 2, F.TYPE_INT64, ""),
                        ("last_known_state", 3, F.TYPE_INT32, ""),  # enum State, read as its number
                        ("custom_properties", 5, F.TYPE_MESSAGE, ".ml_metadata.Execution.CustomPropertiesEntry"),
                        ("name", 6, F.TYPE_STRING, ""), ("create_time_since_epoch", 8, F.TYPE_INT64, ""),
                        repeated=("custom_properties",))
    entry = execution.nested_type.add(name="CustomPropertiesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".ml_metadata.Value")
    message("ListOperationOptions", ("max_result_size", 1, F.TYPE_INT32, ""), ("next_page_token", 3, F.TYPE_STRING, ""))
    message("GetContextByTypeAndNameRequest", ("type_name", 1, F.TYPE_STRING, ""), ("context_name", 2, F.TYPE_STRING, ""))
    message("GetContextByTypeAndNameResponse", ("context", 1, F.TYPE_MESSAGE, ".ml_metadata.Context"))
    message("GetExecutionsByContextRequest", ("context_id", 1, F.TYPE_INT64, ""),
            ("options", 2, F.TYPE_MESSAGE, ".ml_metadata.ListOperationOptions"))
    message("GetExecutionsByContextResponse", ("executions", 1, F.TYPE_MESSAGE, ".ml_metadata.Execution"),
            ("next_page_token", 2, F.TYPE_STRING, ""), repeated=("executions",))
    pool.Add(fd)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"ml_metadata.{m.name}"))
            for m in fd.message_type}


def _call(host: str, method: str, request: Any, reply: Any, token: str | None, timeout: float) -> Any:
    """One unary grpc-web call (M2); returns the parsed ``reply`` message."""
    body = request.SerializeToString()
    req = urllib.request.Request(
        f"{host.rstrip('/')}/{SERVICE}/{method}", data=b"\x00" + len(body).to_bytes(4, "big") + body, method="POST",
        headers={"Content-Type": "application/grpc-web+proto", "Accept": "application/grpc-web+proto", "X-Grpc-Web": "1",
                 **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            headers, data = response.headers, response.read()
    except urllib.error.HTTPError as e:
        raise MlmdUnavailable(f"ML Metadata at {host}: {method} answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise MlmdUnavailable(f"ML Metadata at {host}: cannot reach it ({e})") from None
    if not str(headers.get("Content-Type", "")).startswith("application/grpc-web"):
        raise MlmdUnavailable(f"ML Metadata at {host}: {method} did not answer grpc-web "
                              f"(Content-Type {headers.get('Content-Type')!r}); is --host the KFP UI (ml-pipeline-ui)?")
    messages, trailers = [], {k.lower(): v for k, v in headers.items() if k.lower().startswith("grpc-")}
    at = 0
    while at + 5 <= len(data):
        flag, size = data[at], int.from_bytes(data[at + 1:at + 5], "big")
        frame = data[at + 5:at + 5 + size]
        if len(frame) < size:
            raise MlmdUnavailable(f"ML Metadata at {host}: {method} answered a cut frame")
        at += 5 + size
        if flag & 0x80:
            for line in frame.decode("utf-8", "replace").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip():
                    trailers[name.strip().lower()] = value.strip()
        else:
            messages.append(frame)
    status = trailers.get("grpc-status", "0" if messages else None)
    if status != "0":
        why = urllib.parse.unquote(trailers.get("grpc-message", "")) or "no status"
        raise MlmdUnavailable(f"ML Metadata at {host}: {method} failed (grpc-status {status}: {why})")
    return reply.FromString(messages[0] if messages else b"")


def _value(v: Any) -> Any:
    from google.protobuf import json_format

    kind = v.WhichOneof("value")
    if kind == "struct_value":
        return json_format.MessageToDict(v.struct_value)
    return getattr(v, kind) if kind else None


def run_executions(host: str, run_id: str, *, token: str | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every execution of KFP v2 run ``run_id`` (M3), oldest first: ``{id, display_name, task_name,
    state, inputs, outputs, created}``; ``[]`` when ML Metadata has no such run yet."""
    m = _messages()
    ctx = _call(host, "GetContextByTypeAndName",
                m["GetContextByTypeAndNameRequest"](type_name=RUN_CONTEXT_TYPE, context_name=run_id),
                m["GetContextByTypeAndNameResponse"], token, timeout)
    if not ctx.HasField("context"):
        return []
    out, token_ = [], ""
    while True:
        options = m["ListOperationOptions"](max_result_size=PAGE, **({"next_page_token": token_} if token_ else {}))
        page = _call(host, "GetExecutionsByContext",
                     m["GetExecutionsByContextRequest"](context_id=ctx.context.id, options=options),
                     m["GetExecutionsByContextResponse"], token, timeout)
        for e in page.executions:
            props = {k: _value(v) for k, v in e.custom_properties.items()}
            out.append({"id": e.id, "display_name": props.get("display_name"), "task_name": props.get("task_name"),
                        "state": _STATES.get(e.last_known_state, str(e.last_known_state)),
                        "inputs": props.get("inputs") or {}, "outputs": props.get("outputs") or {},
                        "created": e.create_time_since_epoch})
        token_ = page.next_page_token
        if not token_:
            break
    return sorted(out, key=lambda e: e["id"])
