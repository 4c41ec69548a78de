# Katib's SDK example (Katib's README, "Getting Started": tune with the Push collector), as
# written against kubeflow.katib; tests/test_katib_client.py runs it with the import lines changed.
import kubeflow.katib as katib


# [1] Create an objective function.
def objective(parameters):
    # Import required packages.
    import time

    import kubeflow.katib as katib

    time.sleep(0.1)
    # Calculate objective function.
    result = 4 * int(parameters["a"]) - float(parameters["b"]) ** 2
    print("result=-1000")  # not pushed: the Push collector reads only report_metrics
    # Push metrics to Katib DB.
    katib.report_metrics({"result": result})


# [2] Create hyperparameter search space.
parameters = {
    "a": katib.search.int(min=10, max=20),
    "b": katib.search.double(min=0.1, max=0.2),
}

# [3] Create Katib Experiment with 12 Trials and 2 CPUs per Trial.
# And Experiment uses the "push" metrics collector.
katib_client = katib.KatibClient(namespace="kubeflow")

name = "tune-experiment"
katib_client.tune(
    name=name,
    objective=objective,
    parameters=parameters,
    objective_metric_name="result",
    max_trial_count=12,
    resources_per_trial={"cpu": "2"},
    metrics_collector_config={"kind": "Push"},
)

# [4] Wait until Katib Experiment is complete
katib_client.wait_for_experiment_condition(name=name)

# [5] Get the best hyperparameters.
print(katib_client.get_optimal_hyperparameters(name))
