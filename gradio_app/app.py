"""Record or upload a clip, get the composer. Layout and wiring only: the callbacks are in
``gradio_app.callbacks`` and every decision lives in ``core`` (``core.answer``: identify and
record one clip)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware

from core.config import Settings
from core.datasets import demo
from core.featurize import warm_up
from core.serving import ChampionService, Served
from core.store import PredictionStore, open_store
from core.workers import PredictionWorkers
from gradio_app.access import LoginThrottle
from gradio_app.callbacks import NEIGHBOUR_HEADERS, Backend
from gradio_app.uploads import DELETE_CACHE, UploadJanitor

# Gradio re-summarises its last 10,000 events in a DataFrame after every event, for a
# dashboard this app does not use: under load that cost ~8% of the server's CPU.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
log = logging.getLogger("gradio_app")


def build(
    settings: Settings,
    service: ChampionService,
    store: PredictionStore,
    workers: PredictionWorkers | None = None,
    janitor: UploadJanitor | None = None,
) -> gr.Blocks:
    """The page. ``service``, ``store`` and ``workers`` are injected so tests can point them
    anywhere; without ``workers`` predictions run in the server process. ``janitor`` removes
    each upload after its prediction (see ``launch``). The API is ``/identify`` (one answer,
    a dict: ``core.verdict.Verdict``) and ``/feedback``."""
    backend = Backend(
        settings,
        service,
        store,
        workers or PredictionWorkers(settings, processes=0),
        janitor or UploadJanitor(),
    )
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
                examples, example_labels = _examples(settings)
                if examples:
                    gr.Examples(
                        examples=examples,
                        inputs=[audio],
                        example_labels=example_labels,
                        label="Demo clips (one click)",
                    )
            with gr.Column(scale=4):
                headline = gr.Markdown(elem_id="headline")
                label = gr.Label(num_top_classes=5, label="Candidates", elem_id="label")
                timeline = gr.LinePlot(
                    x="start_s",
                    y="probability",
                    color="composer",
                    x_title="segment start (s)",
                    y_title="probability",
                    y_lim=[0, 1],
                    label="Composer probability over time",
                )
                heard = gr.Plot(label="The notes it heard", elem_id="piano-roll")
        with gr.Row():
            neighbours = gr.Dataframe(
                headers=NEIGHBOUR_HEADERS,
                label="Sounds like (nearest corpus recordings)",
                interactive=False,
            )
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
            backend.identify,
            inputs=[audio, source],
            outputs=details,
            api_name="identify",
            concurrency_limit=settings.app_concurrency,
        ).success(
            backend.show,
            inputs=details,
            outputs=[headline, label, timeline, neighbours, heard, prediction_id, card, truth],
            api_visibility="private",
        )
        send.click(
            backend.feedback,
            inputs=[prediction_id, truth, other],
            outputs=thanks,
            api_name="feedback",
        )
        page.load(backend.status, outputs=card, api_visibility="private")
        gr.Timer(max(settings.app_model_ttl_s, 5)).tick(
            backend.status, outputs=card, api_visibility="private"
        )
    backend.janitor.bind(page)
    return page


def _examples(settings: Settings, limit: int = 8) -> tuple[list[list[str]], list[str]]:
    """One demo clip per composer (the first in the manifest), if the corpus is present,
    with a label people can read ("Chopin — Etudes Opus 10 12 Revolutionary")."""
    try:
        manifest = demo.load_manifest(settings.demo_dir)
    except FileNotFoundError:
        return [], []
    firsts = manifest.groupby("composer", sort=True).first().head(limit)
    labels = [
        f"{c} — {t.replace('_', ' ')}" for c, t in zip(firsts.index, firsts["title"], strict=True)
    ]
    return [[path] for path in firsts["path"]], labels


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
    warm_up(served.card.feature_config)
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
