"""Train -> evaluate -> register -> gate -> promote (or record why not)."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

from core import pipeline
from core.orchestration import DEFAULT_ARGS, FEATURES_ASSET, TRANSIENT, settings_for
from core.train import CANDIDATES, DEFAULT_CANDIDATES

FEATURES = Asset(**FEATURES_ASSET)

DOC = """
### Train and promote
Runs when the `composer_features` Asset is updated (after `featurize`), by hand, or when
`monitor` asks for it.

1. **train**: compares the candidates on cross-validation grouped by work, evaluates the
   winner once on held-out works and logs everything to MLflow (run id in the log and XCom).
2. **register**: a new version of the registered model.
3. **gate**: re-scores the current champion on the same held-out recordings; branches to
   **promote** (moves the `champion` alias) or **keep_champion** (tags the version with why not).
4. **report**: the run id, version and decision, as this DAG run's result.
"""


def dataset_of(params: dict, events) -> str:
    """The dataset of the features update that triggered this run, else the Param."""
    for asset_events in (events or {}).values():
        for event in asset_events:
            if (event.extra or {}).get("dataset"):
                return event.extra["dataset"]
    return params["dataset"]


@dag(
    dag_id="train",
    schedule=[FEATURES],
    catchup=False,
    tags=["composer", "training", "mlflow"],
    default_args=DEFAULT_ARGS,
    doc_md=DOC,
    params={
        "dataset": Param(
            "demo",
            type="string",
            pattern=pipeline.DATASET_PATTERN,
            description=pipeline.DATASET_HELP,
        ),
        "candidates": Param(
            list(DEFAULT_CANDIDATES),
            type="array",
            items={"type": "string", "enum": sorted(CANDIDATES)},
            description="Models compared on grouped CV (RandomForest is the baseline).",
        ),
        "reason": Param("", type="string", description="Why retrain (set by `monitor`)."),
    },
)
def train():
    @task
    def train_model(params: dict, triggering_asset_events=None) -> dict:
        settings = settings_for({})
        dataset = dataset_of(params, triggering_asset_events)
        table, manifest, config = pipeline.load_table(settings, dataset)
        trained, _ = pipeline.train_and_log(
            settings, dataset, table, manifest, config, params["candidates"]
        )
        print(f"MLflow run {trained.run_id}: {trained.candidate}, score {trained.score:.3f}")
        return {**vars(trained), "dataset": dataset}

    @task(**TRANSIENT)
    def register(trained: dict) -> dict:
        fields = {k: v for k, v in trained.items() if k != "dataset"}
        version = pipeline.register(settings_for({}), pipeline.Trained(**fields))
        print(f"registered version {version}")
        return {**trained, "version": version}

    @task(**TRANSIENT)
    def evaluate_gate(registered: dict) -> dict:
        settings = settings_for({})
        _, manifest, _ = pipeline.load_table(settings, registered["dataset"])
        test = manifest[manifest["recording_id"].isin(registered["test_ids"])]
        decision = pipeline.decide(settings, registered["version"], registered["score"], test)
        print(f"gate: {decision.reason}")
        return {**registered, "decision": pipeline.promotion_dict(decision)}

    @task.branch
    def gate(gated: dict) -> str:
        return "promote" if gated["decision"]["promoted"] else "keep_champion"

    @task(**TRANSIENT)
    def promote(gated: dict) -> dict:
        pipeline.record_decision(settings_for({}), pipeline.Promotion(**gated["decision"]))
        return gated["decision"]

    @task(**TRANSIENT)
    def keep_champion(gated: dict) -> dict:
        pipeline.record_decision(settings_for({}), pipeline.Promotion(**gated["decision"]))
        return gated["decision"]

    @task(trigger_rule="none_failed_min_one_success")
    def report(gated: dict, params: dict) -> dict:
        result = {
            "dataset": gated["dataset"],
            "run_id": gated["run_id"],
            "version": gated["version"],
            "candidate": gated["candidate"],
            "metrics": gated["metrics"],
            "promoted": gated["decision"]["promoted"],
            "reason": gated["decision"]["reason"],
            "trigger_reason": params.get("reason") or "",
        }
        print(result)
        return result

    gated = evaluate_gate(register(train_model()))
    branch = gate(gated)
    branch >> [promote(gated), keep_champion(gated)] >> report(gated)


train()
