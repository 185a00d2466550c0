"""How a piano-midi.de title becomes a work: one rule for the demo corpus and the pack.

A piece's split group is its *work* (all movements of a sonata together), so the demo
excerpt of a piece and the pack's windows of the same piece must get the same work name.
Both builds import ``work_of`` from here.
"""

from __future__ import annotations

import re

# A trailing number after one of these is a catalogue number, not a movement number.
CATALOGUE_LABELS = frozenset(
    {"opus", "op", "op.", "bwv", "kv", "k", "d", "hob", "hoboken", "no", "no."}
)


def work_of(title: str) -> str:
    """The title without one trailing movement number.

    ``Sonata_No.8_C_minor_Opus_13_2`` -> ``Sonata_No.8_C_minor_Opus_13``, but
    ``Ballad_G_minor_Opus_23`` stays (23 follows the catalogue label ``Opus``).
    """
    m = re.fullmatch(r"(.+)_(\d+)", title)
    if not m:
        return title
    head = m.group(1)
    previous = head.rsplit("_", 1)[-1].lower()
    if previous in CATALOGUE_LABELS:
        return title
    return head


def natural_key(text: str) -> list[object]:
    """Sort key that orders movement 2 before movement 10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def piece_id(composer: str, midi_file: str) -> str:
    """``<Composer>/<midi_stem>``: the demo's recording_id and the pack's piece id."""
    stem = midi_file.replace("\\", "/").rsplit("/", 1)[-1]
    stem = stem[: -len(".mid")] if stem.lower().endswith(".mid") else stem.rsplit(".", 1)[0]
    return f"{composer}/{stem}"
