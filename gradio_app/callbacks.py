"""The page's callbacks, a few lines each: every decision is made in ``core``
(``core.answer.answer`` identifies and records a clip); here answers become words, plots and
tables, and errors become messages."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pandas as pd

from core import piano_roll
from core.answer import answer
from core.audio import AudioError
from core.config import Settings
from core.serving import ChampionService, ModelCard, ModelUnavailable, Served
from core.store import OTHER_PREFIX, FeedbackError, PredictionStore
from core.verdict import Verdict
from core.workers import PredictionWorkers, WorkerCrashed
from gradio_app.uploads import UploadJanitor

log = logging.getLogger("gradio_app")
NOT_LISTED = "Someone else (not in the list)"
TIMELINE_COMPOSERS = 4


@dataclass(frozen=True)
class Backend:
    """What the callbacks use, injected so tests can point it anywhere."""

    settings: Settings
    service: ChampionService
    store: PredictionStore
    workers: PredictionWorkers
    janitor: UploadJanitor

    def identify(self, audio_path: str | None, source: str) -> dict:
        """API ``/identify``: the answer for one clip (``core.verdict.Verdict`` as a dict)."""
        if not audio_path:
            raise gr.Error("No audio yet: record with the microphone or upload a file first.")
        with self.janitor.using(audio_path):  # the upload is removed when done, even on error
            try:
                served = self.service.current()
                verdict = answer(
                    served,
                    audio_path,
                    source,
                    workers=self.workers,
                    store=self.store,
                    settings=self.settings,
                )
            except (AudioError, WorkerCrashed, ModelUnavailable) as error:
                raise rejected(error) from error
        return verdict.as_dict()

    def show(self, answer_dict: dict) -> tuple:
        """The answer on the page: words, candidates, timeline, neighbours, feedback, card."""
        verdict = Verdict.model_validate(answer_dict)
        choices = [*verdict.probabilities, NOT_LISTED]
        return (
            f"## {verdict.headline}",
            {c.composer: c.probability for c in verdict.candidates} or None,
            timeline(verdict),
            neighbours(verdict),
            piano_roll.figure(verdict.heard, verdict.seconds),
            verdict.prediction_id or "",
            self.status(),
            gr.update(choices=choices, value=None),
        )

    def feedback(
        self, prediction_id: str | None, composer: str | None, other_name: str | None = None
    ) -> str:
        """A composer the model knows, or "Someone else" with a name (API: ``other:<name>``);
        the store checks it and keeps one feedback per prediction (a second one replaces it)."""
        if not prediction_id:
            raise gr.Error("Make a prediction first, then say who the composer really was.")
        if composer == NOT_LISTED:
            composer = OTHER_PREFIX + (other_name or "")
        try:
            saved = self.store.add_feedback(prediction_id, composer or "")
        except FeedbackError as error:
            raise gr.Error(str(error)) from error
        except KeyError as error:
            raise gr.Error(f"Unknown prediction {prediction_id[:40]!r}.") from error
        return f"Thanks: recorded **{saved.composer}** for prediction `{prediction_id[:8]}`."

    def status(self) -> str:
        try:
            return card_markdown(self.service.current())
        except ModelUnavailable as error:
            return f"### No model to serve yet\n{error}"


def rejected(error: Exception) -> gr.Error:
    """One log line per rejected input (the message names the upload, never its folder); the
    traceback only at debug level, and Gradio is told not to print it."""
    log.info("rejected %s: %s", type(error).__name__, str(error)[:500])
    log.debug("rejected input", exc_info=True)
    return gr.Error(str(error), print_exception=False)


def timeline(verdict: Verdict, k: int = TIMELINE_COMPOSERS) -> pd.DataFrame:
    """Long format for the plot: one row per (composer, segment), the top ``k`` composers;
    built from arrays, as ``DataFrame.melt`` took ~8% of the server's CPU under load."""
    names = [c.composer for c in verdict.candidates[:k]]
    starts = np.array([s.start_s for s in verdict.segments])
    values = np.array([[s.probabilities[n] for s in verdict.segments] for n in names])
    return pd.DataFrame(
        {
            "start_s": np.tile(starts, len(names)),
            "composer": np.repeat(names, len(starts)),
            "probability": values.ravel() if len(names) else np.array([]),
        }
    )


NEIGHBOUR_HEADERS = ["Composer", "Recording", "Distance (lower = closer)"]


def neighbours(verdict: Verdict) -> pd.DataFrame:
    """The nearest corpus recordings with human titles and their distance."""
    rows = [
        [n.composer, (n.title or n.recording_id).replace("_", " "), round(n.distance, 2)]
        for n in verdict.sounds_like
    ]
    return pd.DataFrame(rows, columns=NEIGHBOUR_HEADERS)


def card_markdown(served: Served) -> str:
    card: ModelCard = served.card
    accuracy = card.recording_accuracy
    accuracy_text = f"{accuracy:.0%}" if accuracy is not None else "n/a"
    return (
        f"### Model: {card.name} v{card.version} (`@{card.alias}`)\n"
        f"- **{card.candidate}**, trained {card.trained_at}\n"
        f"- held-out accuracy per recording: **{accuracy_text}** "
        f"(unseen works; chance {1 / len(card.composers):.0%})\n"
        + (
            f"- confidence is off by **{card.ece:.0%}** on average (calibration error, ECE, on "
            "unseen works): read 60 % as roughly 60 % ± that\n"
            if card.ece is not None
            else ""
        )
        + f"- knows {len(card.composers)} composers: {', '.join(card.composers)}"
    )
