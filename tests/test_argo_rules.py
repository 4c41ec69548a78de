"""Each Argo rule the test engine follows: one case Argo accepts, one it refuses, with Argo's own text.

The rules are read from argoproj/argo-workflows (f016ad89, v4.1 line); each test names the file and
function. The accepted case is, wherever possible, what hp-components generates.
"""

from __future__ import annotations

import copy
import json
import sys

import pytest

pytest.importorskip("hera")

from hp_components.argo import workflow_template  # noqa: E402
from hp_components.experiment import parse_experiment  # noqa: E402
from tests.argo_engine import (ArgoError, Interpreter, aggregated_json_value_list, eval_expr, expand,  # noqa: E402
                               item_string, parse_json_raw, process_item, semantic_problems, should_execute,
                               substitute)

PY = sys.executable


@pytest.fixture
def doc(basic_dict):
    return workflow_template(parse_experiment(basic_dict))


def tpl(doc, name):
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def refused(doc, text):
    problems = semantic_problems(doc)
    assert text in problems, problems


# ---------------------------------------------------------------- workflow/validate/validate.go

def test_generated_template_is_accepted(doc):
    assert semantic_problems(doc) == []


def test_validate_template_artifact_path_only_on_leaves(doc):
    """validate.go validateTemplate (inputs): a steps template declares input artifacts without path."""
    assert all("path" not in a for a in tpl(doc, "loop")["inputs"]["artifacts"])
    tpl(doc, "loop")["inputs"]["artifacts"][0]["path"] = "/tmp/hp/loop/batch.json"
    refused(doc, "templates.loop.inputs.artifacts.batch.path only valid in container/script templates")


def test_validate_leaf_parallelism(doc):
    """validate.go validateLeaf: parallelism is for steps/dag templates only."""
    assert tpl(doc, "loop")["parallelism"] == 3
    tpl(doc, "trial-pod")["parallelism"] = 2
    refused(doc, "templates.trial-pod.parallelism is only valid for steps and dag templates")


def test_validate_non_leaf_deadline(doc):
    """validate.go validateNonLeaf: activeDeadlineSeconds only on leaves (the trial's safety net is on the leaf)."""
    tpl(doc, "loop")["activeDeadlineSeconds"] = "60"
    refused(doc, "templates.loop.activeDeadlineSeconds is only valid for leaf templates")


def test_validate_retry_policy(doc):
    """validate.go validateTemplateHolder: retryPolicy is Always, OnError, OnFailure, OnTransientError or empty."""
    assert tpl(doc, "trial")["retryStrategy"]["retryPolicy"] == "Always"
    tpl(doc, "trial")["retryStrategy"]["retryPolicy"] = "Sometimes"
    refused(doc, "Sometimes is not a valid RetryPolicy")


def test_validate_arguments_values(doc):
    """validate.go validateArgumentsValues: each step argument needs value or valueFrom."""
    tpl(doc, "loop")["steps"][1][0]["arguments"]["parameters"][0].pop("value")
    p = "templates.loop.steps[1].collect.arguments."
    refused(doc, f"{p}observations.value or {p}observations.valueFrom is required")


def test_process_args_inputs_supplied(doc):
    """workflow/common/util.go ProcessArgs (run by validateSteps with the step's arguments)."""
    tpl(doc, "trial-pod")["inputs"]["parameters"].append({"name": "unsupplied"})
    refused(doc, "templates.trial.steps[0].run inputs.parameters.unsupplied was not supplied")
    tpl(doc, "trial-pod")["inputs"]["parameters"][-1]["default"] = "x"
    assert semantic_problems(doc) == []


def test_resolve_all_variables_steps_scope(doc):
    """validate.go validateSteps + resolveAllVariables + addOutputsToScope: steps.X.* only for earlier
    steps, .outputs.parameters.Y only if X's template declares Y."""
    loop = tpl(doc, "loop")
    loop["steps"][1][0]["arguments"]["parameters"][0]["value"] = "{{steps.nope.outputs.parameters.observation}}"
    refused(doc, "templates.loop.steps failed to resolve {{steps.nope.outputs.parameters.observation}}")
    loop["steps"][1][0]["arguments"]["parameters"][0]["value"] = "{{steps.trial.outputs.parameters}}"
    loop["steps"][2][0]["arguments"]["parameters"][0]["value"] = "{{steps.collect.outputs.parameters.missing}}"
    refused(doc, "templates.loop.steps failed to resolve {{steps.collect.outputs.parameters.missing}}")


def test_add_outputs_to_scope_aggregate_only_for_loops(doc):
    """validate.go addOutputsToScope: steps.X.outputs.parameters (the aggregate) exists for withItems/withParam only."""
    loop = tpl(doc, "loop")
    step = loop["steps"][0][0]
    del step["withParam"]
    for p in step["arguments"]["parameters"]:
        p["value"] = "v"
    refused(doc, "templates.loop.steps failed to resolve {{steps.trial.outputs.parameters}}")


def test_add_items_to_scope(doc):
    """validate.go addItemsToScope: item.* needs a loop; one loop kind per step; withItems keys are checked."""
    step = tpl(doc, "loop")["steps"][0][0]
    step["withItems"] = [{"x": 1}]
    refused(doc, "templates.loop.steps[0].trial only one of withItems, withParam, withSequence can be specified")
    del step["withParam"]
    refused(doc, "templates.loop.steps failed to resolve {{item.hp-trial-name}}")


def test_validate_template_holder(doc):
    """validate.go validateTemplateHolder: a step's template and a templateRef must resolve."""
    tpl(doc, "main")["steps"][0][0]["template"] = "nope"
    refused(doc, "templates.main.steps[0].suggest template name 'nope' undefined")
    tpl(doc, "main")["steps"][0][0] = {"name": "suggest", "templateRef": {"name": "other", "template": "x"}}
    refused(doc, "templates.main.steps[0].suggest template reference other.x not found")


def test_validate_outputs(doc):
    """validate.go validateOutputs / validateOutputParameter: steps outputs need parameter or expression."""
    main = tpl(doc, "main")
    assert main["outputs"]["parameters"][0]["valueFrom"] == {"parameter": "{{steps.loop.outputs.parameters.best}}"}
    main["outputs"]["parameters"][0]["valueFrom"] = {"parameter": "{{steps.loop.outputs.parameters.nope}}"}
    refused(doc, "templates.main.outputs failed to resolve {{steps.loop.outputs.parameters.nope}}")
    main["outputs"]["parameters"][0]["valueFrom"] = {"path": "/tmp/x"}
    refused(doc, "templates.main.outputs.parameters.best.parameter or expression must be specified for Steps templates")
    main["outputs"]["parameters"][0]["value"] = "x"
    refused(doc, "templates.main.outputs.parameters.best has both valueFrom and value specified, choose one")


def test_validate_steps_unique_names(doc):
    """validate.go validateSteps: a step name is unique across the template's groups."""
    tpl(doc, "loop")["steps"][2][0]["name"] = "trial"
    refused(doc, "templates.loop.steps[2].name 'trial' is not unique")


def test_validate_pod_gc(doc):
    """validate.go ValidateWorkflow: podGC.strategy is one Argo knows."""
    assert doc["spec"]["podGC"] == {"strategy": "OnPodSuccess"}
    doc["spec"]["podGC"]["strategy"] = "Sometimes"
    refused(doc, "podGC.strategy unknown strategy 'Sometimes'")


def test_validate_leaf_mount_paths_and_pod_volumes(doc):
    """validate.go validateLeaf: no mountPath twice; Kubernetes creates the pod only when each mount names a volume."""
    trial = tpl(doc, "trial-pod")
    trial["volumes"] = [{"name": "data", "emptyDir": {}}]
    trial["container"]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    assert semantic_problems(doc) == []
    trial["container"]["volumeMounts"].append({"name": "data2", "mountPath": "/data"})
    problems = semantic_problems(doc)
    assert "templates.trial-pod.container.volumeMounts[1].mountPath '/data' already mounted in container.volumeMounts.data" in problems
    assert "templates.trial-pod: pod spec.containers[0].volumeMounts[1].name: Not found: 'data2'" in problems


def test_workflow_name_length(doc):
    """validate.go ValidateWorkflow: maxCharsInObjectName (63)."""
    doc["metadata"]["name"] = "x" * 64
    refused(doc, f"workflow name {'x' * 64!r} must not be more than 63 characters long (currently 64)")


# ---------------------------------------------------------------- workflow/controller (run time)

def test_process_item_top_level_keys_only():
    """operator.go processItem: a map item defines {{item}} and {{item.K}} for top-level keys only."""
    item = parse_json_raw('{"hp-trial-name": "t-1", "lr": "0.01", "parameters": {"lr": 0.01, "b": [1, 2]}}')
    values, name = process_item(item, 0, "loop[0].trial")
    assert substitute({"v": "{{item.lr}}"}, values, None) == {"v": "0.01"}
    with pytest.raises(ArgoError, match=r"failed to resolve \{\{item.parameters.lr\}\}"):
        substitute({"v": "{{item.parameters.lr}}"}, values, None)
    # a nested value is Item.String: its JSON text in the raw key order (not Go's map[...] form)
    assert values["item.parameters"] == '{"lr":0.01,"b":[1,2]}'
    assert json.loads(values["item"])["hp-trial-name"] == "t-1"
    assert name == 'loop[0].trial(0:hp-trial-name:t-1,lr:0.01,parameters:{"lr":0.01,"b":[1,2]})'


def test_item_string_go_formatting():
    """pkg/apis/workflow/v1alpha1/item.go Item.String: numbers as written, strings without outer quotes
    but with JSON escapes kept, <, >, & restored (util/json Fix)."""
    assert [item_string(parse_json_raw(x)) for x in ('1e-05', '100000000', '"a b"', '"<&>"', 'true')] == \
        ["1e-05", "100000000", "a b", "<&>", "true"]
    assert item_string(parse_json_raw('"say \\"hi\\""')) == 'say \\"hi\\"'  # why such values are refused at compile


def test_aggregate_outputs_succeeded_children_in_loop_order(tmp_path):
    """operator.go processAggregateNodeOutputs: only Succeeded children, in loop order; the whole
    aggregate is set even when none succeeded, the per-name list then is not."""
    engine = Interpreter(_fan_out_doc(), tmp_path)
    scope: dict = {}
    ok = lambda v: {"phase": "Succeeded", "parameters": {"o": v}}  # noqa: E731
    engine._aggregate("t", [ok('{"a":1}'), {"phase": "Failed", "parameters": {}}, ok('{"a":3}')], scope)
    assert scope["steps.t.outputs.parameters"] == '[{"o":"{\\"a\\":1}"},{"o":"{\\"a\\":3}"}]'
    assert scope["steps.t.outputs.parameters.o"] == '[{"a":1},{"a":3}]'
    scope = {}
    engine._aggregate("t", [{"phase": "Failed", "parameters": {}}, {"phase": "Error", "parameters": {}}], scope)
    assert scope == {"steps.t.outputs.parameters": "[]", "steps.t.outputs.result": "[]"}
    with pytest.raises(ArgoError, match=r"failed to resolve \{\{steps.t.outputs.parameters.o\}\}"):
        substitute({"v": "{{steps.t.outputs.parameters.o}}"}, scope, ("steps.", "tasks."))


def test_try_json_unmarshal_all_or_nothing():
    """operator.go aggregatedJSONValueList / tryJSONUnmarshal: decoded only when every value is an object or list."""
    assert aggregated_json_value_list(['{"a":1}', "[2]"]) == '[{"a":1},[2]]'
    assert aggregated_json_value_list(['{"a":1}', "3"]) == '["{\\"a\\":1}","3"]'
    assert aggregated_json_value_list(["x", "y"]) == '["x","y"]'


def test_should_execute_govaluate_rules():
    """steps.go shouldExecute: govaluate after substitution; bare words become strings."""
    assert should_execute("false == false") and not should_execute("true == false")
    assert should_execute("foo != bar") and should_execute("Succeeded == Succeeded")
    assert not should_execute('true == "true"')  # a bool is not a string
    assert should_execute("3 > 2") and should_execute("1.5 == 1.50")
    with pytest.raises(ArgoError, match="Expected boolean evaluation for 'foo'. Got foo"):
        should_execute("foo")
    with pytest.raises(ArgoError, match="Invalid 'when' expression"):
        should_execute("a == @")


def test_output_expression_conditional_parameter():
    """scope.go resolveParameter: expr-lang over the expanded scope; only the chosen branch is evaluated."""
    expr = "steps['next'].status == 'Skipped' ? steps['collect'].outputs.parameters['best'] : steps['next'].outputs.parameters['best']"
    env = expand({"steps.next.status": "Skipped", "steps.collect.outputs.parameters.best": "{}", "steps.next.outputs.parameters.best": None})
    assert eval_expr(expr, env) == "{}"
    env = expand({"steps.next.status": "Succeeded", "steps.collect.outputs.parameters.best": "a", "steps.next.outputs.parameters.best": "b"})
    assert eval_expr(expr, env) == "b"
    with pytest.raises(ArgoError, match="unsupported expression"):
        eval_expr("sprig.trim(x)", env)


def _fan_out_doc(code: str = "print(1)", continue_on: bool = True, retry: dict | None = None, parallelism: int = 2) -> dict:
    leaf = {"name": "leaf", "inputs": {"parameters": [{"name": "v"}]},
            "container": {"image": "python", "command": [PY, "-c", code, "{{inputs.parameters.v}}"]},
            "outputs": {"parameters": [{"name": "o", "valueFrom": {"path": "/tmp/hp/o", "default": "{}"}}]}}
    if retry:
        leaf["retryStrategy"] = retry
    step = {"name": "t", "template": "leaf", "withParam": "{{inputs.parameters.items}}",
            "arguments": {"parameters": [{"name": "v", "value": "{{item.v}}"}]}}
    if continue_on:
        step["continueOn"] = {"failed": True, "error": True}
    main = {"name": "main", "parallelism": parallelism, "inputs": {"parameters": [{"name": "items"}]},
            "steps": [[step]], "outputs": {"parameters": [{"name": "all", "valueFrom": {"parameter": "{{steps.t.outputs.parameters}}"}}]}}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "rules"},
            "spec": {"entrypoint": "main", "templates": [main, leaf],
                     "arguments": {"parameters": [{"name": "items", "value": '[{"v":"1"},{"v":"2"},{"v":"3"}]'}]}}}


def _run_main(doc, tmp_path, **kw):
    engine = Interpreter(doc, tmp_path, **kw)
    main = doc["spec"]["templates"][0]
    return engine, engine.execute({"template": "main"}, {"items": doc["spec"]["arguments"]["parameters"][0]["value"]}, {}, "rules", None) if main else None


def test_continue_on_and_step_group_failure(tmp_path):
    """steps.go executeStepGroup: a failed child fails the group unless continueOn covers its phase."""
    code = "import sys; sys.exit(int(sys.argv[1]) == 2)"
    _, res = _run_main(_fan_out_doc(code, continue_on=True), tmp_path / "a")
    assert res["phase"] == "Succeeded" and len(json.loads(res["parameters"]["all"])) == 2
    _, res = _run_main(_fan_out_doc(code, continue_on=False), tmp_path / "b")
    assert res["phase"] == "Failed"


def test_parallelism_bounds_concurrent_children(tmp_path):
    """operator.go checkParallelism (template parallelism): at most that many children run at once."""
    engine, res = _run_main(_fan_out_doc("import time; time.sleep(0.4)", parallelism=2), tmp_path)
    assert res["phase"] == "Succeeded" and engine.max_running == 2


@pytest.mark.parametrize("policy, phase, runs", [("Always", "Failed", 3), ("Always", "Error", 3), ("OnError", "Failed", 1),
                                                 ("OnError", "Error", 3), ("OnFailure", "Error", 1)])
def test_process_node_retries(tmp_path, policy, phase, runs):
    """operator.go processNodeRetries: which phases each policy retries, at most limit retries, attempts named X(n)."""
    tries: list = []

    def faults(template, params, attempt):
        if params["v"] == "1":
            tries.append(attempt)
            return f"{phase}: pod deleted"
        return None

    engine, res = _run_main(_fan_out_doc(retry={"limit": "2", "retryPolicy": policy}), tmp_path, faults=faults)
    assert len(tries) == runs
    names = [n["name"] for n in engine.nodes if n["type"] == "Pod" and "0:v:1" in n["name"]]
    assert names == [f"rules[0].t(0:v:1)({i})" for i in range(runs)]
    assert len(json.loads(res["parameters"]["all"])) == 2  # the failed child left the aggregate


def test_retry_then_success_keeps_the_output(tmp_path):
    engine, res = _run_main(_fan_out_doc(retry={"limit": "2", "retryPolicy": "Always"}), tmp_path,
                            faults=lambda t, p, attempt: "Error: node lost" if p["v"] == "2" and attempt == 0 else None)
    assert len(json.loads(res["parameters"]["all"])) == 3


def test_max_stack_depth(tmp_path):
    """operator.go executeTemplate: currentStackDepth >= maxStackDepth (100) stops the workflow."""
    rec = {"name": "r", "inputs": {"parameters": [{"name": "n"}]}, "steps": [[{"name": "again", "template": "r",
           "arguments": {"parameters": [{"name": "n", "value": "x"}]}}]]}
    doc = {"metadata": {"name": "deep"}, "spec": {"entrypoint": "r", "templates": [rec], "arguments": {"parameters": [{"name": "n", "value": "1"}]}}}
    engine = Interpreter(doc, tmp_path)
    with pytest.raises(ArgoError, match="Maximum recursion depth exceeded"):
        engine.execute({"template": "r"}, {"n": "1"}, {}, "deep", None)
    assert engine.max_seen_depth == 100


def test_unsupplied_input_at_run_time(tmp_path):
    """workflow/common/util.go ProcessArgs at run time."""
    doc = copy.deepcopy(_fan_out_doc())
    doc["spec"]["templates"][1]["inputs"]["parameters"].append({"name": "w"})
    engine = Interpreter(doc, tmp_path)
    with pytest.raises(ArgoError, match="inputs.parameters.w was not supplied"):
        engine.execute({"template": "main"}, {"items": '[{"v":"1"}]'}, {}, "rules", None)


def test_pending_timeout_where_the_controller_checks_it(tmp_path):
    """operator.go executeTemplate -> checkTemplateTimeouts: checked on the node the template runs as,
    while Pending; the ErrTimeout it returns fails the caller's step group (steps.go executeStepGroup)
    whatever continueOn says; a leaf with a retryStrategy runs as a Retry node, which stays Running."""
    pending = lambda t, p, a: "Pending" if p.get("v") == "1" else None  # noqa: E731
    doc = _fan_out_doc()
    doc["spec"]["templates"][1]["pendingTimeout"] = "1m"
    _, res = _run_main(doc, tmp_path / "a", faults=pending)
    assert res["phase"] == "Failed"  # continueOn does not save the group
    doc["spec"]["templates"][1]["retryStrategy"] = {"limit": "1"}
    with pytest.raises(ArgoError, match="checked on the Retry node"):
        _run_main(doc, tmp_path / "b", faults=pending)
    # what hp-components generates: a retried steps template around the pod with the deadline
    doc = copy.deepcopy(_fan_out_doc())
    leaf = doc["spec"]["templates"][1]
    leaf["pendingTimeout"] = "1m"
    wrapper = {"name": "wrap", "retryStrategy": {"limit": "1"}, "inputs": {"parameters": [{"name": "v"}]},
               "steps": [[{"name": "run", "template": "leaf", "arguments": {"parameters": [{"name": "v", "value": "{{inputs.parameters.v}}"}]}}]],
               "outputs": {"parameters": [{"name": "o", "valueFrom": {"parameter": "{{steps.run.outputs.parameters.o}}"}}]}}
    doc["spec"]["templates"].append(wrapper)
    doc["spec"]["templates"][0]["steps"][0][0]["template"] = "wrap"
    assert semantic_problems(doc) == []
    engine, res = _run_main(doc, tmp_path / "c", faults=pending)
    assert res["phase"] == "Succeeded" and len(json.loads(res["parameters"]["all"])) == 2
    assert [n["message"] for n in engine.nodes if n["name"].startswith("rules[0].t(0:v:1)") and n["type"] == "Pod"] == ["timeout"] * 2


@pytest.mark.parametrize("change, text", [
    # validate.go validateTemplateType
    (lambda d: tpl(d, "collect").update(steps=[]),
     "templates.collect multiple template types specified. choose one of: container, containerSet, steps, script, resource, dag, suspend, template, template ref"),
    (lambda d: tpl(d, "collect").pop("container"),
     "templates.collect template type unspecified. choose one of: container, containerSet, steps, script, resource, dag, suspend, template, template ref"),
    # validate.go validateTemplate (inputs)
    (lambda d: tpl(d, "loop")["inputs"]["artifacts"][0].update({"from": "{{inputs.artifacts.x}}"}),
     "templates.loop.inputs.artifacts.batch.from not valid in inputs"),
    # validate.go validateLeaf
    (lambda d: tpl(d, "trial-pod").update(activeDeadlineSeconds="soon"),
     "templates.trial-pod.activeDeadlineSeconds must be a positive integer > 0 or an argo variable"),
    (lambda d: tpl(d, "collect")["container"].update(image=""), "templates.collect.container.image may not be empty"),
    (lambda d: tpl(d, "collect")["container"]["args"].append("{{inputs.parameters.nope}}"),
     "templates.collect: failed to resolve {{inputs.parameters.nope}}"),
    # validate.go validateNonLeaf (pendingTimeout: the controller refuses it on steps, operator_test.go "PendingTimeout in step")
    (lambda d: tpl(d, "trial").update(pendingTimeout="1m"), "templates.trial.pendingTimeout is only valid for leaf templates"),
    # validate.go validateOutputs / validateOutputParameter
    (lambda d: tpl(d, "collect")["outputs"]["parameters"][0].update(valueFrom={"parameter": "x"}),
     "templates.collect.outputs.parameters.done.path must be specified for Container templates"),
    (lambda d: tpl(d, "collect")["outputs"]["parameters"][0].update(valueFrom={}),
     "valueFrom type unspecified. choose one of: path, jqFilter, jsonPath, parameter, raw, expression"),
    (lambda d: tpl(d, "collect")["outputs"]["parameters"][0].update(valueFrom={"path": "/a", "parameter": "b"}),
     "multiple valueFrom types specified. choose one of: path, jqFilter, jsonPath, parameter, raw"),
    (lambda d: tpl(d, "collect")["outputs"]["parameters"][0].pop("valueFrom"),
     "templates.collect.outputs.parameters.done does not have valueFrom or value specified"),
    # validate.go validateTemplateHolder (templateRef)
    (lambda d: tpl(d, "main")["steps"][0][0].update(templateRef={"name": "x", "template": "y"}),
     "templates.main.steps[0].suggest template name cannot be specified with templateRef"),
    # workflow/common/util.go ProcessArgs (artifacts)
    (lambda d: tpl(d, "loop")["steps"][1][0]["arguments"]["artifacts"].pop(),
     "templates.loop.steps[1].collect inputs.artifacts.batch was not supplied"),
    # validate.go validateSteps / isValidStepName
    (lambda d: tpl(d, "loop")["steps"][1][0].update(name="collect_"), "templates.loop.steps[1].name 'collect_' is invalid: name must consist of alpha-numeric characters or '-', "
     "and must start with an alpha-numeric character (e.g. My-name1-2, 123-NAME)"),
    # validate.go ValidateWorkflow (entrypoint) / validateTemplateHolder
    (lambda d: d["spec"].update(entrypoint="nope"), "spec.entrypoint template name 'nope' undefined"),
])
def test_more_validation_rules(doc, change, text):
    assert semantic_problems(doc) == []
    change(doc)
    refused(doc, text)
