"""What the KFP backend makes of our IR: Argo template depth, Workflow size, one trial's executor input.

The backend cannot run here, so these are small models of its rules, each taken from its source
(kubeflow/pipelines 7b70c7b95f68; ``ac/`` = backend/src/v2/compiler/argocompiler/, ``drv/`` =
backend/src/v2/driver/; Argo = argoproj/argo-workflows f016ad89, the v4 line KFP pins). They are
estimates for our own IRs (container, sub-DAG, condition and ParallelFor tasks; no importers, exit
handlers or PVC tasks, which we never emit), not a reimplementation::

    ir = yaml.safe_load(open("p.yaml"))
    argo_depth(ir)                  # 10, whatever maxTrialCount
    workflow_spec_bytes(ir)         # the created Workflow object (what etcd stores), bytes of JSON
    trial_executor_input_bytes(ir)  # what the driver resolves for one trial pod

Rules:

D1 ac/dag.go ``DAG`` (root branch): the Workflow's entrypoint is a DAG whose task ``root`` calls
   the root DAG template: 2 levels.
D2 ac/dag.go ``task`` (ComponentSpec_Dag case) and ``dagTask``: a task whose component is a DAG
   (a sub-pipeline, a ``dsl.If`` branch, a condition-branches group) calls that DAG's template: +1.
D3 ac/dag.go ``iteratorTask`` and ``iterationItemTask``: a ParallelFor task calls
   ``<comp>-<task>-iterator``, which calls ``<comp>-iteration`` (withSequence), which calls the
   body DAG: +3.
D4 ac/container.go ``containerExecutorTask`` / ``addContainerExecutorTemplate``: a container task
   calls ``system-container-executor`` (a DAG) whose task calls ``system-container-impl``: +2.
D5 Argo workflow/controller/controller.go ``getMaxStackDepth`` (``maxAllowedStackDepth = 100``)
   and operator.go ``executeTemplate``: the node fails once the nesting reaches 100.
S1 ac/argo.go ``saveComponentSpec`` / ``saveComponentImpl`` / ``saveKubernetesSpec`` /
   ``saveProtoToArguments``: every component's spec, every executor's container spec and every
   kubernetes config is one ``spec.arguments.parameters`` entry (JSON), stored once per name.
S2 ac/dag.go ``task`` / ``dagDriverTask`` and ac/container.go ``containerDriverTask``: each task
   becomes a driver DAG task carrying the task spec JSON inline (twice for a ParallelFor:
   ``iteratorTask`` and ``iterationItemTask``), plus the executor/DAG task.
S3 ac/dag.go ``dagDriverTask`` (root): the runtime config (every pipeline parameter's default) is
   inlined once on ``root-driver``.
E1 drv/driver.go ``provisionOutputs`` and drv/resolve.go ``resolveInputs``: a container task's
   ExecutorInput holds its resolved input values, one URI per input artifact, and per output a
   file path or a URI ``<pipeline root>/<task name>/<salt>/<name>`` (metadata/client.go
   ``GenerateOutputURI``).
L1 Argo workflow/packer/packer.go ``getMaxWorkflowSize`` / ``CompressWorkflowIfNeeded`` (and
   workflow/hydrator/hydrator.go ``Dehydrate``): a Workflow over MAX_WORKFLOW_SIZE (1 MiB) once its
   status nodes are compressed fails, unless node status offload is configured. L2 etcd's request
   limit (1.5 MiB) sits above it. :func:`check_ir` refuses past L1 and warns past 80 % of it.
E2 linux include/uapi/linux/binfmts.h MAX_ARG_STRLEN (128 KiB): the ExecutorInput is one argv
   string of the launcher (backend/src/v2/component/launcher_v2.go).
"""

from __future__ import annotations

import json
from typing import Any


from hp_components.kfp._errors import UnsupportedExperiment

__all__ = ["ARGO_MAX_DEPTH", "ETCD_REQUEST_BYTES", "MAX_ARG_STRLEN", "argo_depth", "ir_dag_depth",
           "MAX_WORKFLOW_BYTES", "WARN_FRACTION", "workflow_spec_bytes", "workflow_status_bytes",
           "trial_executor_input_bytes", "check_ir", "check_size"]

ARGO_MAX_DEPTH = 100                     # D5
MAX_ARG_STRLEN = 128 * 1024              # E2
#: L1 Argo's MAX_WORKFLOW_SIZE default (workflow/packer/packer.go ``getMaxWorkflowSize``, 1024 *
#: 1024): ``CompressWorkflowIfNeeded`` compresses only status.nodes once the Workflow JSON passes
#: it and fails the workflow ("workflow is longer than maximum allowed size") if it still does,
#: unless node status offload is on (workflow/hydrator/hydrator.go ``Dehydrate``). So the spec,
#: then spec + status, must stay under it.
MAX_WORKFLOW_BYTES = 1024 * 1024
#: L2 etcd's request limit (--max-request-bytes, 1.5 MiB by default; kubeflow/pipelines #10968):
#: every Workflow write must fit, but L1 refuses below it, so L1 is the check
ETCD_REQUEST_BYTES = 1536 * 1024
#: warn once an estimate passes this share of its limit (the estimates are not measured on a cluster)
WARN_FRACTION = 0.8
#: the templates every KFP Workflow has whatever the pipeline (system-dag-driver,
#: system-container-driver, system-container-executor, system-container-impl, with their
#: scripts, args and volumes): measured on test_data/compiled-workflows/hello-world.yaml at
#: 7b70c7b (about 9 KB); taken as 12 KB to cover retry-/metadata- variants
FIXED_TEMPLATE_BYTES = 12 * 1024
#: a DAG task's own fields (name, template, depends/when, arguments names) beyond the task JSON
TASK_OVERHEAD_BYTES = 400
#: a pipeline root such as minio://mlpipeline/v2/artifacts/<pipeline name>/<run uuid>
ROOT_URI = "minio://mlpipeline/v2/artifacts/{pipeline}/00000000-0000-0000-0000-000000000000"


def _compact(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _component(ir: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    return ir["components"][task["componentRef"]["name"]]


def argo_depth(ir: dict[str, Any]) -> int:
    """The deepest Argo template nesting the backend makes from ``ir`` (rules D1-D4)."""
    def dag(dag_spec: dict[str, Any], depth: int) -> int:
        deepest = depth
        for task in (dag_spec.get("tasks") or {}).values():
            comp = _component(ir, task)
            if "dag" in comp:
                step = 3 if "parameterIterator" in task or "artifactIterator" in task else 1  # D3 / D2
                deepest = max(deepest, dag(comp["dag"], depth + step))
            else:
                deepest = max(deepest, depth + 2)  # D4
        return deepest
    return dag(ir["root"]["dag"], 2)  # D1


def ir_dag_depth(ir: dict[str, Any]) -> int:
    """The IR's own DAG nesting (root = 1, +1 per task whose component is a DAG)."""
    def dag(dag_spec: dict[str, Any]) -> int:
        subs = [dag(_component(ir, t)["dag"]) for t in (dag_spec.get("tasks") or {}).values()
                if "dag" in _component(ir, t)]
        return 1 + max(subs, default=0)
    return dag(ir["root"]["dag"])


def workflow_spec_bytes(ir: dict[str, Any], platform: dict[str, Any] | None = None) -> int:
    """Estimated size of the Workflow object the backend creates from ``ir`` (rules S1-S3)."""
    total = FIXED_TEMPLATE_BYTES
    total += sum(_compact(c) for c in ir["components"].values())                       # S1 components-*
    total += _compact(ir["root"])                                                       # S1 components-root
    total += sum(_compact(e) for e in ir["deploymentSpec"]["executors"].values())      # S1 implementations-*
    for cfg in ((platform or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
                .get("executors", {}).values()):
        total += _compact(cfg)                                                          # S1 kubernetes-*

    def dag(dag_spec: dict[str, Any]) -> int:
        size = 0
        for name, task in (dag_spec.get("tasks") or {}).items():
            copies = 2 if "parameterIterator" in task else 1                            # S2
            size += copies * (_compact(task) + TASK_OVERHEAD_BYTES) + TASK_OVERHEAD_BYTES
        return size
    seen = set()
    for key, comp in [("root", ir["root"])] + list(ir["components"].items()):
        if "dag" in comp and key not in seen:  # one Argo DAG template per DAG component (ac/argo.go addTemplate)
            seen.add(key)
            total += dag(comp["dag"])
    defaults = {k: v.get("defaultValue") for k, v in
                ((ir["root"].get("inputDefinitions") or {}).get("parameters") or {}).items()}
    total += _compact(defaults)                                                         # S3
    return total


def _loop_leaves(ir: dict[str, Any]) -> list[tuple[str, int]]:
    """(container component, how many ParallelFors enclose it) for every leaf task."""
    out = []

    def walk(dag_spec: dict[str, Any], loops: int) -> None:
        for task in (dag_spec.get("tasks") or {}).values():
            comp = _component(ir, task)
            inner = loops + ("parameterIterator" in task)
            if "dag" in comp:
                walk(comp["dag"], inner)
            else:
                out.append((task["componentRef"]["name"], inner))
    walk(ir["root"]["dag"], 0)
    return out


def _trial_components(ir: dict[str, Any]) -> list[str]:
    """The trial tasks' components: those inside the innermost ParallelFors (a round's trial loop,
    a lane's one-item trial loop inside the lanes loop)."""
    leaves = _loop_leaves(ir)
    deepest = max((n for _, n in leaves), default=0)
    return [name for name, n in leaves if deepest and n == deepest]


def _leaves_below_root(ir: dict[str, Any]) -> list[str]:
    """The container components called from the root's sub-DAGs, outside any ParallelFor."""
    out = []

    def walk(dag_spec: dict[str, Any]) -> None:
        for task in (dag_spec.get("tasks") or {}).values():
            comp = _component(ir, task)
            if "parameterIterator" in task:
                continue
            if "dag" in comp:
                walk(comp["dag"])
            else:
                out.append(task["componentRef"]["name"])
    for task in (ir["root"]["dag"].get("tasks") or {}).values():
        if "dag" in _component(ir, task) and "parameterIterator" not in task:
            walk(_component(ir, task)["dag"])
    return out


def trial_executor_input_bytes(ir: dict[str, Any], values: dict[str, Any]) -> int:
    """The ExecutorInput JSON the driver resolves for the largest trial pod, given one loop item's
    ``values`` (rule E1); its inputs artifact URIs and outputs are laid out as the driver does."""
    return max((len(t.encode()) for t in _trial_executor_inputs(ir, values)), default=0)


def _trial_executor_inputs(ir: dict[str, Any], values: dict[str, Any]) -> list[str]:
    root = ROOT_URI.format(pipeline=ir["pipelineInfo"]["name"])
    out = []
    for name in _trial_components(ir) or []:
        comp = ir["components"][name]
        inp = comp.get("inputDefinitions") or {}
        outp = comp.get("outputDefinitions") or {}
        task_root = f"{root}/{name[5:]}/00000000-0000-0000-0000-000000000000"
        executor_input = {
            "inputs": {
                "parameterValues": {k: values.get(k, "x" * 64) for k in (inp.get("parameters") or {})},
                "artifacts": {k: {"artifacts": [{"name": "0", "type": {"schemaTitle": v["artifactType"]["schemaTitle"]},
                                                  "uri": f"{root}/suggest/00000000-0000-0000-0000-000000000000/{k}",
                                                  "metadata": {}}]}
                              for k, v in (inp.get("artifacts") or {}).items()},
            },
            "outputs": {
                "parameters": {k: {"outputFile": f"/tmp/kfp/outputs/{k}"} for k in (outp.get("parameters") or {})},
                "artifacts": {k: {"artifacts": [{"type": {"schemaTitle": v["artifactType"]["schemaTitle"]},
                                                  "uri": f"{task_root}/{k}", "metadata": {}}]}
                              for k, v in (outp.get("artifacts") or {}).items()},
                "outputFile": "/tmp/kfp_outputs/output_metadata.json",
            },
        }
        out.append(json.dumps(executor_input, separators=(",", ":")))
    return out


def check_ir(ir: dict[str, Any], field: str = "spec.maxTrialCount", *, trials: int | None = None,
             rounds: int | None = None) -> None:
    """Refuse, naming ``field``, an IR whose Workflow would not run; warn close to a limit.

    Depth (D5) and the spec size (L1) always; with ``trials`` and ``rounds`` (what the run can
    reach) also the whole Workflow after ``trials`` trials: spec + status nodes (L1, N1-N2).
    A refusal is an :class:`UnsupportedExperiment` (exit 2 in the CLI); a warning is a
    ``UserWarning`` once an estimate passes :data:`WARN_FRACTION` of its limit.
    """
    depth = argo_depth(ir)
    if depth >= ARGO_MAX_DEPTH:
        raise UnsupportedExperiment(field, f"the compiled pipeline nests {depth} Argo templates deep; Argo stops at "
                                    f"{ARGO_MAX_DEPTH} (maxAllowedStackDepth, workflow/controller/controller.go "
                                    "getMaxStackDepth): call tune() from fewer nested pipelines or ParallelFors")
    if depth >= ARGO_MAX_DEPTH * WARN_FRACTION:
        _warn(f"the compiled pipeline nests {depth} Argo templates deep, close to Argo's {ARGO_MAX_DEPTH} "
              "(maxAllowedStackDepth)")
    spec = workflow_spec_bytes(ir)
    check_size(spec, field)
    if trials is None or rounds is None:
        return
    raw, stored = workflow_status_bytes(ir, trials, rounds)
    status = raw if spec + raw <= MAX_WORKFLOW_BYTES else stored  # N2: compressed only past the limit
    total = spec + status
    what = (f"the Workflow KFP would create is about {total // 1024} KiB after {trials} trials in {rounds} rounds "
            f"(spec {spec // 1024} KiB + status nodes {status // 1024} KiB"
            f"{' after compression' if status == stored else ''}; an estimate from the backend's rules, "
            "hp_components/kfp/_backend.py)")
    per_trial = max(1, status // max(1, trials))
    fits = max(0, (MAX_WORKFLOW_BYTES - spec) // per_trial)
    change = (f"lower maxTrialCount (about {per_trial} bytes per trial: roughly {fits} trials fit) or "
              "raise parallelTrialCount (fewer rounds, a smaller spec), or run several experiments; a cluster "
              "with Argo's node status offload (persistence.nodeStatusOffLoad) lifts this limit")
    if total >= MAX_WORKFLOW_BYTES:
        raise UnsupportedExperiment(field, f"{what}; Argo fails a workflow over {MAX_WORKFLOW_BYTES // 1024} KiB "
                                    f"(MAX_WORKFLOW_SIZE, workflow/packer/packer.go CompressWorkflowIfNeeded: "
                                    f"'workflow is longer than maximum allowed size'): {change}")
    if total >= MAX_WORKFLOW_BYTES * WARN_FRACTION:
        _warn(f"{field}: {what}, close to Argo's {MAX_WORKFLOW_BYTES // 1024} KiB (MAX_WORKFLOW_SIZE); "
              f"retries and long trial values add to it: {change}")


def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, UserWarning, stacklevel=3)


def check_size(size: int, field: str = "spec.maxTrialCount") -> None:
    """Refuse, naming ``field``, a Workflow spec of about ``size`` bytes that Argo would not take (L1)."""
    if size >= MAX_WORKFLOW_BYTES:
        raise UnsupportedExperiment(field, f"the Workflow KFP would create is about {size // 1024} KiB before any "
                                    f"trial runs; Argo refuses workflows over {MAX_WORKFLOW_BYTES // 1024} KiB "
                                    "(MAX_WORKFLOW_SIZE, workflow/packer/packer.go; only the status nodes can be "
                                    "compressed): lower maxTrialCount or raise parallelTrialCount (fewer rounds)")


def workflow_status_bytes(ir: dict[str, Any], trials: int, rounds: int, values: dict[str, Any] | None = None) -> tuple[int, int]:
    """(raw, stored) estimate of ``status.nodes`` after ``trials`` trials in ``rounds`` rounds.

    N1 (Argo operator.go ``initializeExecutableNode``; KFP cmd/driver/main.go ``handleExecution``):
    every node keeps its resolved inputs and outputs. A container task makes 3 nodes (driver pod,
    executor DAG, impl pod) and its pod-spec-patch (launcher flags + executor input + component
    spec + container) is stored 3 times; the driver also holds the component, task and container
    JSON. A retried task adds a Retry parent holding the inputs again (operator.go
    ``executeTemplate``), counted once per task here (no retry actually happening).
    N2 Argo workflow/packer/packer.go ``CompressWorkflowIfNeeded``: past MAX_WORKFLOW_SIZE the nodes
    are stored gzip-compressed and base64-encoded; ``stored`` is that size (measured by compressing
    the modelled nodes, which repeat a lot, as the real ones do).
    """
    import base64
    import gzip

    import random
    import uuid

    rng = random.Random(0)
    zero = "00000000-0000-0000-0000-000000000000"
    trial_inputs = _trial_executor_inputs(ir, values or {})
    comps = {n: c for n, c in ir["components"].items() if "executorLabel" in c}
    execs = ir["deploymentSpec"]["executors"]
    # sorted: the estimate must not depend on the order of the IR's maps
    tasks = sorted(json.dumps(t, separators=(",", ":"), sort_keys=True) for c in [ir["root"], *ir["components"].values()]
                   for t in ((c.get("dag") or {}).get("tasks") or {}).values())
    nodes: list[Any] = []

    def unique(text: str) -> str:  # each execution has its own ids, URIs and values (what keeps gzip honest)
        return text.replace(zero, str(uuid.UUID(int=rng.getrandbits(128))))

    def container_task(comp_name: str, executor_input: str, index: int) -> None:
        comp = json.dumps(comps[comp_name], separators=(",", ":"), sort_keys=True)
        cont = json.dumps(execs[comps[comp_name]["executorLabel"]], separators=(",", ":"), sort_keys=True)
        patch = json.dumps({"containers": [{"name": "main", "command": [
            "/kfp-launcher/launch", "--pipeline_name", ir["pipelineInfo"]["name"], "--run_id", unique(zero),
            "--execution_id", str(rng.getrandbits(40)), "--executor_input", unique(executor_input),
            "--component_spec", comp, "--pod_name", "$(KFP_POD_NAME)", "--pod_uid", "$(KFP_POD_UID)",
            "--mlmd_server_address", "$(METADATA_GRPC_SERVICE_HOST)", "--mlmd_server_port",
            "$(METADATA_GRPC_SERVICE_PORT)"], "args": [cont], "name_": f"trial-{index}-{rng.random()}"}]})
        node = {"id": unique(zero), "inputs": {"component": comp, "container": cont, "task": rng.choice(tasks)},
                "outputs": {"pod-spec-patch": patch, "cached-decision": "false", "condition": ""}}
        nodes.extend([node, {"id": unique(zero), "inputs": {"pod-spec-patch": patch}},
                      {"id": unique(zero), "inputs": {"pod-spec-patch": patch}},
                      {"id": unique(zero), "retry-parent": node["inputs"]}])

    step_input = json.dumps({"inputs": {"parameterValues": {"experiment": json.dumps(ir["root"], sort_keys=True)[:3000]}},
                             "outputs": {"outputFile": f"/tmp/{zero}"}})
    trial_comp = min(_trial_components(ir), default=None)
    # the steps of a round: leaves inside the root's sub-DAGs but outside the loop (ours: collect,
    # gather, no-trials; a round runs collect and gather or no-trials)
    step_comps = sorted(set(_leaves_below_root(ir)) - {trial_comp})
    if not step_comps:  # lanes: the suggest and record steps sit in the lanes loop, outside the trial loop
        step_comps = sorted({name for name, n in _loop_leaves(ir) if n and name != trial_comp})
    for i in range(trials):
        if trial_comp:
            container_task(trial_comp, trial_inputs[0], i)
    for r in range(rounds):  # collect, gather, and the round's 6 DAG-driver/DAG nodes (component + task JSON)
        for name in step_comps[:2]:
            container_task(name, step_input, r)
        nodes.extend({"id": unique(zero), "inputs": {"task": rng.choice(tasks), "component": rng.choice(tasks)}}
                     for _ in range(6))
    raw = json.dumps(nodes).encode()
    return len(raw), len(base64.b64encode(gzip.compress(raw, mtime=0)))
