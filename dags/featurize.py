"""Featurize a dataset: manifest -> shards (mapped tasks) -> feature table (an Asset)."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from core import pipeline
from core.orchestration import DEFAULT_ARGS, FEATURES_ASSET, TRANSIENT, manifest_for, settings_for

FEATURES = Asset(**FEATURES_ASSET)

DOC = """
### Featurize
Builds the manifest for the chosen dataset, splits it into shards, featurizes each shard as
a **mapped task** (this is how it scales out over workers) and assembles the feature table.

* Re-runs and retries are idempotent: shard files are named by their content and written
  atomically, and the per-recording feature cache means only new audio is computed.
* The table is published as the `composer_features` Asset, which schedules the `train` DAG.
* MusicNet must have been downloaded first (`make download-data`).
"""


@dag(
    dag_id="featurize",
    schedule=None,
    catchup=False,
    tags=["composer", "features"],
    default_args=DEFAULT_ARGS,
    doc_md=DOC,
    params={
        "dataset": Param(
            "demo",
            type="string",
            pattern=pipeline.DATASET_PATTERN,
            description=pipeline.DATASET_HELP,
        ),
        "shards": Param(4, type="integer", minimum=1, maximum=64, description="Mapped tasks."),
        "sample_rate": Param(22050, type="integer", minimum=8000, maximum=48000),
        "segment_seconds": Param(10.0, type="number", minimum=1, maximum=60),
        "n_mfcc": Param(13, type="integer", minimum=4, maximum=40),
        "ensemble": Param("Solo Piano", type="string", description="MusicNet only ('all')."),
    },
)
def featurize():
    @task
    def plan(params: dict) -> list[list[str]]:
        settings = settings_for(params)
        manifest = manifest_for(params, settings)
        return pipeline.plan_shards(manifest, params["shards"])

    @task(**TRANSIENT, max_active_tis_per_dagrun=4)
    def featurize_shard(ids: list[str]) -> dict:
        params = get_current_context()["params"]
        settings = settings_for(params)
        manifest = manifest_for(params, settings)
        return pipeline.featurize_shard(
            settings, params["dataset"], manifest, ids, settings.features
        )

    @task(outlets=[FEATURES])
    def assemble(shards: list[dict], params: dict) -> str:
        settings = settings_for(params)
        manifest = manifest_for(params, settings)
        path = pipeline.assemble(
            settings, params["dataset"], manifest, [s["path"] for s in shards], settings.features
        )
        get_current_context()["outlet_events"][FEATURES].extra = {
            "dataset": params["dataset"],
            "path": str(path),
        }
        return str(path)

    assemble(featurize_shard.expand(ids=plan()))


featurize()
