"""One copy of each component in a compiled graph: the N round calls share one round component.

KFP's compiler gives every task its own component and executor (``comp-collect``,
``comp-collect-2``, ... ``exec-collect-57``), even when the same sub-pipeline is called N times,
so the IR would grow by a whole round per round. :func:`dedupe_graph` merges byte-identical
components and executors (after renaming the references inside them) until nothing changes; the
graph then runs the same (a task only names its component), and a round costs one root task::

    graph = dsl.pipeline(...)(tuning)
    dedupe_graph(graph)          # in place, before it is compiled or called
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dedupe_spec", "dedupe_graph"]


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _representatives(table: dict[str, Any]) -> dict[str, str]:
    """name -> the shortest (then alphabetically first) name with the same content."""
    groups: dict[str, list[str]] = {}
    for name, value in table.items():
        groups.setdefault(_key(value), []).append(name)
    return {n: min(names, key=lambda s: (len(s), s)) for names in groups.values() for n in names}


def _rename_refs(node: Any, comp_map: dict[str, str], exec_map: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "componentRef" and isinstance(v, dict) and v.get("name") in comp_map:
                v = {**v, "name": comp_map[v["name"]]}
            elif k == "executorLabel" and v in exec_map:
                v = exec_map[v]
            out[k] = _rename_refs(v, comp_map, exec_map)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, comp_map, exec_map) for v in node]
    return node


def dedupe_spec(spec: dict[str, Any], platform: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``spec`` (a PipelineSpec as a dict) and its platform spec with duplicates merged."""
    spec = dict(spec)
    k8s_execs = (((platform or {}).get("platforms") or {}).get("kubernetes") or {}).get("deploymentSpec", {}).get("executors")
    execs = dict(spec["deploymentSpec"]["executors"])
    # an executor's identity includes its kubernetes config (the platform spec is keyed by executor label)
    exec_map = _representatives({n: [e, (k8s_execs or {}).get(n)] for n, e in execs.items()})
    comps = {n: _rename_refs(c, {}, exec_map) for n, c in spec["components"].items()}
    root = spec["root"]
    while True:
        comp_map = _representatives(comps)
        merged = {n: _rename_refs(c, comp_map, {}) for n, c in comps.items() if comp_map[n] == n}
        root = _rename_refs(root, comp_map, {})
        changed = len(merged) != len(comps)
        comps = merged
        if not changed:
            break
    spec["components"] = comps
    spec["root"] = root
    kept = {exec_map[n] for n in execs}
    spec["deploymentSpec"] = {**spec["deploymentSpec"], "executors": {n: e for n, e in execs.items() if n in kept}}
    if k8s_execs is not None:
        platform = json.loads(json.dumps(platform))
        platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"] = {
            n: v for n, v in k8s_execs.items() if n in kept}
    return spec, platform


def dedupe_graph(graph: Any) -> dict[str, Any]:
    """Merge duplicate components of a KFP GraphComponent in place; returns its PipelineSpec as a dict."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = json_format.MessageToDict(graph.component_spec.implementation.graph)
    platform = json_format.MessageToDict(graph.component_spec.platform_spec) if graph.component_spec.platform_spec else None
    spec, platform = dedupe_spec(spec, platform)
    new = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(spec, new)
    graph.component_spec.implementation.graph = new
    if platform is not None:
        ps = pipeline_spec_pb2.PlatformSpec()
        json_format.ParseDict(platform, ps)
        graph.component_spec.platform_spec = ps
    return spec
