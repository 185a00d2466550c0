"""Uploads are not kept: after predictions through the real app (good clips, bad ones, the
same clip from several clients at once) no upload is left in Gradio's cache folder
(``GRADIO_TEMP_DIR``, one per server here), nothing at all after shutdown, and with
``keep_audio`` the store's own copy is the one that stays."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from core import pipeline
from core.config import REPO_ROOT
from gradio_app.app import launch
from tests.app.conftest import app_test_settings
from tests.conftest import FAST_CANDIDATES

pytestmark = pytest.mark.integration

DEMO_CLIPS = sorted((REPO_ROOT / "data" / "demo" / "audio").rglob("*.ogg"))[:3]


@pytest.fixture(scope="module")
def tracking_uri(make_settings, tmp_path_factory) -> str:
    """One champion for both servers of this module."""
    settings = app_test_settings(make_settings, tmp_path_factory.mktemp("uploads-train"))
    pipeline.run(settings, "demo", candidates=FAST_CANDIDATES)
    return settings.mlflow_tracking_uri


def serve(make_settings, folder: Path, tracking_uri: str, **overrides):
    """A server whose Gradio cache is ``folder/gradio`` (GRADIO_TEMP_DIR is read per request,
    so it stays set until the server is closed)."""
    settings = app_test_settings(make_settings, folder, tracking_uri)
    settings = settings.model_copy(update=overrides)
    cache = folder / "gradio"
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    return launch(settings, block=False), settings, cache


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def uploads_left(cache: Path, before: list[Path]) -> list[Path]:
    """Files in the cache that were not there when the server started (the demo examples)."""
    return [p for p in files_under(cache) if p not in before]


def make_bad(tmp_path: Path) -> list[Path]:
    text = tmp_path / "notes.wav"
    text.write_text("not a recording\n" * 10)
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(3 * 22050, np.float32), 22050)
    return [text, silence]


@pytest.fixture()
def temp_dir_env():
    saved = os.environ.get("GRADIO_TEMP_DIR")
    yield
    if saved is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = saved


def test_no_upload_is_kept(make_settings, tracking_uri, tmp_path, temp_dir_env):
    running, settings, cache = serve(make_settings, tmp_path / "app", tracking_uri)
    before = files_under(cache)
    try:
        client = Client(running.url, verbose=False, download_files=False)
        for clip in DEMO_CLIPS:
            client.predict(handle_file(str(clip)), api_name="/identify")
        for bad in make_bad(tmp_path):
            with pytest.raises(AppError):
                client.predict(handle_file(str(bad)), api_name="/identify")
        # the same clip from four clients at once: one shared cache file, every one answered
        clients = [Client(running.url, verbose=False, download_files=False) for _ in range(4)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda c: c.predict(handle_file(str(DEMO_CLIPS[0])), api_name="/identify"),
                    clients,
                )
            )
        assert all(answer["prediction_id"] and answer["kind"] for answer in answers)
        left = uploads_left(cache, before)
        print(
            f"\n{len(DEMO_CLIPS) + 2 + 4} predictions; cache before {len(before)} files, "
            f"uploads left {left}"
        )
        assert left == []
        assert not any(Path(settings.audio_store_dir).glob("*"))  # keep_audio is off
    finally:
        running.close()
    remaining = files_under(cache)
    print(f"after shutdown: {remaining}")
    assert remaining == []


def test_keep_audio_keeps_the_store_copy_only(make_settings, tracking_uri, tmp_path, temp_dir_env):
    running, settings, cache = serve(make_settings, tmp_path / "app", tracking_uri, keep_audio=True)
    before = files_under(cache)
    try:
        client = Client(running.url, verbose=False, download_files=False)
        answer = client.predict(handle_file(str(DEMO_CLIPS[1])), api_name="/identify")
        prediction_id = answer["prediction_id"]
        kept = running.store.predictions().set_index("id").loc[prediction_id, "audio_path"]
        assert kept and Path(kept).is_file()
        assert Path(kept).parent == Path(settings.audio_store_dir)
        assert Path(kept).read_bytes() == DEMO_CLIPS[1].read_bytes()
        assert DEMO_CLIPS[1].stem not in Path(kept).name  # a generated name
        assert uploads_left(cache, before) == []
    finally:
        running.close()
    shutil.rmtree(settings.audio_store_dir, ignore_errors=True)
