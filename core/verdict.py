"""The answer to one clip, and the rules that make it.

Every front door (the app and its API, the CLI, the MLflow pyfunc, the simulation) gets a
:class:`Verdict`; the store records its ``kind``. Two rules live here and nowhere else:

* a recording's composer probabilities are the **mean of its segments' probabilities**
  (serving, training's per-recording scores and the monitoring reference all use
  :func:`recording_probabilities`);
* the **kind** of an answer (:func:`decide_kind`): ``not_piano`` when the piano check says so,
  ``work`` when a known work was recognised, ``not_sure`` when the top probability is below the
  threshold (then only candidates are given, no headline composer), else ``composer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from core.piano_roll import Note

Kind = Literal["work", "composer", "not_sure", "not_piano"]
KINDS: tuple[str, ...] = get_args(Kind)
NOT_SURE_BELOW = 0.35  # default of Settings.not_sure_below
NOT_SURE_CANDIDATES = 3


def recording_probabilities(
    proba: np.ndarray, recording_ids: Sequence[str] | None = None, labels: Sequence[str] = ()
) -> pd.DataFrame:
    """THE verdict rule: mean segment probability per recording (a recording's verdict weighs
    every segment). Without ``recording_ids`` all rows are one recording (index ``0``)."""
    frame = pd.DataFrame(np.asarray(proba, dtype=np.float64), columns=list(labels) or None)
    ids = list(recording_ids) if recording_ids is not None else [0] * len(frame)
    return frame.groupby(pd.Index(ids, name="recording_id"), sort=True).mean()


def decide_kind(
    top_probability: float, is_piano: bool, not_sure_below: float, work_found: bool = False
) -> Kind:
    """Which kind of answer a clip gets (the order matters: not piano beats everything)."""
    if not is_piano:
        return "not_piano"
    if work_found:
        return "work"
    if top_probability < not_sure_below:
        return "not_sure"
    return "composer"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Candidate(_Frozen):
    composer: str
    probability: float


class WorkMatch(_Frozen):
    """A recognised known work (filled in by known-work recognition, issue 13)."""

    title: str
    composer: str
    position_s: float | None = None  # where in the work the clip starts
    score: float = 0.0


class Segment(_Frozen):
    start_s: float
    probabilities: dict[str, float]


class Neighbour(_Frozen):
    recording_id: str
    composer: str = ""
    work: str = ""
    title: str = ""
    distance: float


class Verdict(_Frozen):
    """One answer. ``composer`` is the headline (None for ``not_sure`` and ``not_piano``);
    ``candidates`` are the top composers (empty for ``not_piano``). ``as_dict`` is what the
    API returns; ``features`` (for monitoring) stays out of it."""

    kind: Kind
    headline: str
    composer: str | None = None
    probability: float | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    probabilities: dict[str, float] = Field(default_factory=dict)  # most likely first
    work: WorkMatch | None = None
    heard: list[Note] = Field(default_factory=list)  # the transcription, for the piano roll
    piano_score: float = 1.0
    reason: str = ""  # the piano check's plain words
    segments: list[Segment] = Field(default_factory=list)
    sounds_like: list[Neighbour] = Field(default_factory=list)
    seconds: float = 0.0
    sample_rate: int = 0
    notes: list[str] = Field(default_factory=list)
    latency_s: float = 0.0
    model: str = ""  # "name vN", set by whoever served it
    prediction_id: str | None = None  # set once recorded
    features: list[float] = Field(default_factory=list, exclude=True, repr=False)

    @property
    def top_composer(self) -> str | None:
        """The classifier's first choice, whatever the kind (None for not piano)."""
        return self.candidates[0].composer if self.candidates else None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def headline(
    kind: Kind, candidates: Sequence[Candidate], reason: str = "", work: WorkMatch | None = None
) -> str:
    """The answer in plain words, as the app shows it."""
    if kind == "not_piano":
        return "This does not sound like piano music" + (f" ({reason})" if reason else "")
    if kind == "work" and work is not None:
        where = ""
        if work.position_s is not None:
            minutes, seconds = divmod(round(work.position_s), 60)
            where = f", from about {minutes}:{seconds:02d}"
        return f"This sounds like {work.composer}'s {work.title}{where}"
    names = [c.composer for c in candidates[:NOT_SURE_CANDIDATES]]
    if kind == "not_sure":
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        return f"Not sure: {listed}"
    best = candidates[0]
    return f"Probably {best.composer} ({round(100 * best.probability)} %)"
