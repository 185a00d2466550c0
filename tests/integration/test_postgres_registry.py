"""The same main job with MLflow's store on the local PostgreSQL server (production's)."""

from __future__ import annotations

import pytest

from core import pipeline, registry
from tests.conftest import FAST_CANDIDATES

pytestmark = pytest.mark.integration


def test_train_register_promote_on_postgresql(make_settings, postgres_url):
    settings = make_settings(tracking_uri=postgres_url)
    first = pipeline.run(settings, "demo", candidates=FAST_CANDIDATES)
    worse = pipeline.run(settings, "demo", candidates=("dummy",))

    client = registry.connect(settings)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    assert first.promotion.promoted and str(champion.version) == first.version
    assert not worse.promotion.promoted
    assert int(worse.version) == int(first.version) + 1
    assert client.get_run(first.run_id).data.metrics["test_recording_accuracy"] > 0
