"""Record or upload a clip, get the composer. Layout and wiring only: every decision lives
in ``core`` (decoding, features, the champion, the prediction store)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware

from core.audio import AudioError
from core.config import Settings
from core.datasets import demo
from core.featurize import warm_up
from core.serving import ChampionService, ModelUnavailable, Served
from core.store import (
    OTHER_PREFIX,
    FeedbackError,
    PredictionRecord,
    PredictionStore,
    open_store,
    store_audio,
)
from core.workers import PredictionWorkers, WorkerCrashed
from gradio_app.access import LoginThrottle
from gradio_app.uploads import DELETE_CACHE, UploadJanitor

# Gradio re-summarises its last 10,000 events in a DataFrame after every event, for a
# dashboard this app does not use: under load that cost ~8% of the server's CPU.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
log = logging.getLogger("gradio_app")
SOURCES = ("upload", "microphone", "api")
NOT_LISTED = "Someone else (not in the list)"


def build(
    settings: Settings,
    service: ChampionService,
    store: PredictionStore,
    workers: PredictionWorkers | None = None,
    janitor: UploadJanitor | None = None,
) -> gr.Blocks:
    """The page. ``service``, ``store`` and ``workers`` are injected so tests can point them
    anywhere; without ``workers`` predictions run in the server process. ``janitor`` removes
    each upload after its prediction (see ``launch``)."""
    workers = workers or PredictionWorkers(settings, processes=0)
    janitor = janitor or UploadJanitor()

    def predict(audio_path: str | None, source: str):
        if not audio_path:
            raise gr.Error("No audio yet: record with the microphone or upload a file first.")
        with janitor.using(audio_path):  # the upload is removed when this is done, even on error
            return _predict(audio_path, source)

    def _predict(audio_path: str, source: str):
        served = _served_or_error(service)
        try:
            prediction = workers.predict(served, audio_path)
        except (AudioError, WorkerCrashed, ModelUnavailable) as error:
            # One line per rejected input (the message names the upload, never its folder);
            # the traceback only at debug level, and Gradio is told not to print it.
            log.info("rejected %s: %s", type(error).__name__, str(error)[:500])
            log.debug("rejected input", exc_info=True)
            raise gr.Error(str(error), print_exception=False) from error
        record = PredictionRecord.from_prediction(
            prediction,
            source=source if source in SOURCES else "api",
            model_name=served.name,
            model_version=served.version,
            feature_schema=served.model.feature_config.schema_id,
            audio_path=store_audio(Path(audio_path), settings),
        )
        prediction_id = store.record(record)
        details = {
            "prediction_id": prediction_id,
            "model": f"{served.name} v{served.version}",
            **prediction.as_dict(k=5),
        }
        return (
            prediction.probabilities,
            _timeline(prediction.segments, prediction.top(4)),
            prediction.neighbours,
            details,
            prediction_id,
            _card(served),
            gr.update(choices=[*served.model.labels, NOT_LISTED], value=None),
        )

    def feedback(
        prediction_id: str | None, composer: str | None, other_name: str | None = None
    ) -> str:
        """A composer the model knows, or "Someone else" with a name (API: ``other:<name>``);
        the store checks it and keeps one feedback per prediction (a second one replaces it)."""
        if not prediction_id:
            raise gr.Error("Make a prediction first, then say who the composer really was.")
        if composer == NOT_LISTED:
            composer = OTHER_PREFIX + (other_name or "")
        try:
            saved = store.add_feedback(prediction_id, composer or "")
        except FeedbackError as error:
            raise gr.Error(str(error)) from error
        except KeyError as error:
            raise gr.Error(f"Unknown prediction {prediction_id[:40]!r}.") from error
        return f"Thanks: recorded **{saved.composer}** for prediction `{prediction_id[:8]}`."

    def status() -> str:
        try:
            return _card(service.current())
        except ModelUnavailable as error:
            return f"### No model to serve yet\n{error}"

    limits = (
        f"Uploads up to {settings.app_max_file_mb:g} MB (wav, mp3, ogg, flac; other formats "
        f"through ffmpeg). The first {settings.audio.max_seconds:g} s are analysed, in "
        f"{settings.features.segment_seconds:g} s segments; clips need at least "
        f"{settings.audio.min_seconds:g} s."
    )
    with gr.Blocks(title="Who composed this?", delete_cache=DELETE_CACHE) as page:
        source = gr.State("api")
        gr.Markdown("# Who composed this?\nRecord a piano piece or upload a recording.")
        with gr.Row():
            with gr.Column(scale=3):
                audio = gr.Audio(
                    sources=["upload", "microphone"], type="filepath", label="Piano recording"
                )
                gr.Markdown(limits, elem_id="limits")
                button = gr.Button("Name the composer", variant="primary", elem_id="predict")
                examples = _examples(settings)
                if examples:
                    gr.Examples(examples=examples, inputs=[audio], label="Demo clips")
            with gr.Column(scale=4):
                label = gr.Label(num_top_classes=5, label="Composer", elem_id="label")
                timeline = gr.LinePlot(
                    x="start_s",
                    y="probability",
                    color="composer",
                    x_title="segment start (s)",
                    y_title="probability",
                    y_lim=[0, 1],
                    label="Composer probability over time",
                )
        with gr.Row():
            neighbours = gr.Dataframe(label="Sounds like (nearest corpus recordings)")
            card = gr.Markdown(elem_id="model-card")
        with gr.Accordion("Was it right? Tell us", open=False):
            with gr.Row():
                prediction_id = gr.Textbox(label="Prediction id", interactive=False)
                truth = gr.Dropdown(
                    label="The composer really was", choices=[], allow_custom_value=True
                )
                other = gr.Textbox(
                    label="If someone else: the composer's name", max_length=60, max_lines=1
                )
                send = gr.Button("Save feedback")
            thanks = gr.Markdown()
        with gr.Accordion("Details (JSON, as the API returns it)", open=False):
            details = gr.JSON()

        audio.upload(lambda: "upload", outputs=source, api_visibility="private")
        audio.stop_recording(lambda: "microphone", outputs=source, api_visibility="private")
        button.click(
            predict,
            inputs=[audio, source],
            outputs=[label, timeline, neighbours, details, prediction_id, card, truth],
            api_name="predict",
            concurrency_limit=settings.app_concurrency,
        )
        send.click(
            feedback, inputs=[prediction_id, truth, other], outputs=thanks, api_name="feedback"
        )
        page.load(status, outputs=card, api_visibility="private")
        gr.Timer(max(settings.app_model_ttl_s, 5)).tick(
            status, outputs=card, api_visibility="private"
        )
    janitor.bind(page)
    return page


def _served_or_error(service: ChampionService) -> Served:
    try:
        return service.current()
    except ModelUnavailable as error:
        raise gr.Error(str(error), print_exception=False) from error


def _timeline(segments: pd.DataFrame, top: list[tuple[str, float]]) -> pd.DataFrame:
    """Long format for the plot: one row per (composer, segment); built from arrays, as
    ``DataFrame.melt`` took ~8% of the server process's CPU under load (py-spy)."""
    names = [name for name, _ in top]
    starts = segments["start_s"].to_numpy()
    return pd.DataFrame(
        {
            "start_s": np.tile(starts, len(names)),
            "composer": np.repeat(names, len(starts)),
            "probability": segments[names].to_numpy().T.ravel(),
        }
    )


def _card(served: Served) -> str:
    card = served.card()
    accuracy = card["recording_accuracy"]
    accuracy_text = f"{accuracy:.0%}" if accuracy is not None else "n/a"
    return (
        f"### Model: {card['name']} v{card['version']} (`@{card['alias']}`)\n"
        f"- **{card['candidate']}**, trained {card['trained_at']}\n"
        f"- held-out accuracy per recording: **{accuracy_text}** "
        f"(unseen works; chance {1 / len(card['composers']):.0%})\n"
        f"- knows {len(card['composers'])} composers: {', '.join(card['composers'])}"
    )


def _examples(settings: Settings, limit: int = 8) -> list[list[str]]:
    """One demo clip per composer (the first in the manifest), if the corpus is present."""
    try:
        manifest = demo.load_manifest(settings.demo_dir)
    except FileNotFoundError:
        return []
    firsts = manifest.groupby("composer", sort=True).first()
    return [[path] for path in firsts["path"].head(limit)]


@dataclass
class Running:
    page: gr.Blocks
    url: str
    service: ChampionService
    store: PredictionStore
    workers: PredictionWorkers

    def close(self) -> None:
        self.page.close()
        self.workers.close()


def launch(
    settings: Settings,
    service: ChampionService | None = None,
    store: PredictionStore | None = None,
    block: bool = True,
) -> Running:
    """Start the server as configured (tests pass their own service/store and block=False)."""
    service = service or ChampionService(settings)
    store = store or open_store(settings)
    workers = PredictionWorkers(settings).start(_warm_up(service))
    janitor = UploadJanitor()
    page = build(settings, service, store, workers, janitor)
    auth = tuple(settings.app_auth.split(":", 1)) if settings.app_auth else None
    # Failed logins are throttled per client (behind Cloud Run, by its X-Forwarded-For).
    throttle = Middleware(LoginThrottle, trust_forwarded=bool(os.environ.get("K_SERVICE")))
    demo_dir = str(Path(settings.demo_dir).resolve())
    _, local_url, share_url = page.launch(
        server_name=settings.app_host,
        server_port=settings.app_port or None,
        share=settings.app_share,
        auth=auth,
        root_path=settings.app_root_path or None,
        max_file_size=f"{settings.app_max_file_mb:g}mb",
        allowed_paths=[demo_dir],
        prevent_thread_lock=True,
        quiet=True,
        theme=gr.themes.Soft(),
        app_kwargs={"middleware": [throttle]},
    )
    janitor.protect_existing()  # after launch: the demo examples already in the cache stay
    print(f"Serving on {local_url}", flush=True)
    if settings.app_share:
        if share_url:
            print(f"Share link: {share_url}", flush=True)
        else:
            print(
                "Share link could NOT be created (no internet access to Gradio's share "
                f"servers?). Still serving locally on {local_url}.",
                flush=True,
            )
    _add_health_route(page, store)
    running = Running(page, local_url, service, store, workers)
    if block:
        signal.signal(signal.SIGTERM, _interrupt)  # Cloud Run, docker stop: shut down cleanly
        try:
            page.block_thread()
        finally:
            workers.close()
    return running


def _add_health_route(page: gr.Blocks, store: PredictionStore) -> None:
    """``GET /health`` on Gradio's own FastAPI app (no login needed, for load balancers):
    the store's typed health as JSON; 200 while predictions are kept (``ok``, or ``degraded``
    while the database is away and records are spooled), 503 when they cannot be (``down``)."""

    def health() -> JSONResponse:
        state = store.health()
        return JSONResponse(state.as_dict(), status_code=state.http_status)

    page.app.add_api_route("/health", health, methods=["GET"])


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _warm_up(service: ChampionService) -> Served | None:
    """Load the champion and compile the feature code before the first visitor arrives
    (otherwise the first prediction pays ~4 s), and before worker processes start (they
    share the compiled-code cache)."""
    served = service.refresh()
    if served is None:
        print(service.last_error or "No model yet.", flush=True)
        return None
    warm_up(served.model.feature_config)
    return served


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gradio_app",
        description="Serve the champion composer model in a web page (and a Gradio API).",
        epilog="Every option also reads from COMPOSER_* settings; PORT is honoured (Cloud Run).",
    )
    parser.add_argument("--host", help="Bind address (default 127.0.0.1).")
    parser.add_argument("--port", type=int, help="Port (default $PORT or 7860; 0 = free port).")
    parser.add_argument("--share", action="store_true", default=None, help="Public share link.")
    parser.add_argument("--root-path", help="URL prefix when served behind a proxy.")
    parser.add_argument("--auth", help="user:password for the login page.")
    args = parser.parse_args(argv)
    overrides = {
        "app_host": args.host,
        "app_port": args.port,
        "app_share": args.share,
        "app_root_path": args.root_path,
        "app_auth": args.auth,
    }
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    settings.ensure_dirs()
    handler = logging.StreamHandler()  # the app's own one-line entries (rejected inputs, ...)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    launch(settings)
