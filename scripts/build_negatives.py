"""Build data/negatives: shipped test clips (speech, other instruments, piano controls) and the
feature rows the "not piano music" detector is trained on.

Maintainer script, build-time only: needs ``espeak-ng`` (Debian package espeak-ng),
``fluidsynth``, FluidR3_GM.sf2 (fluid-soundfont-gm) and TimGM6mb.sf2 (timgm6mb-soundfont).
Tests and the bench only read the result; the detector is then fitted by
``scripts/train_piano_check.py``. The musical phrases and texts below are written for this
script (no third-party material).

* Test clips (``clips.json`` + OGG, 12 s, mono, 22050 Hz, peak -1 dBFS): three espeak-ng voices,
  nine FluidR3 instruments, and two FluidR3 *piano* renders of the same phrases (controls: the
  detector must judge the sound, not the phrase).
* Training rows (``train_rows.parquet``): features of clips that are NOT the test clips:
  generated kinds with seeds 1..N (test uses seed 0), other espeak voices and texts, and about
  thirty non-piano General MIDI programs on other keys/tempi/phrases, with both SoundFonts,
  plus piano renders of the same phrases as positives.

    .venv/bin/python -P scripts/build_negatives.py [--out data/negatives] [--no-train]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import nonmusic
from core.config import FeatureConfig
from core.featurize import featurize_audio
from core.render import normalise, render_midi

SAMPLE_RATE = 22050
SECONDS = 12.0
FONTS = {
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
}
OGG_QUALITY = 0.4
TICKS = 480  # per beat
TRAIN_SEEDS = range(1, 7)
TRAIN_SECONDS = 20.0

TEST_SPEECH = {  # kind -> (espeak-ng voice, words per minute, text)
    "speech_en_male": (
        "en-us",
        150,
        "Good evening and welcome to the archive. This recording was made in the main hall "
        "on the third of March. Please check the catalogue number before you file the tape, "
        "and write the date on the label in clear letters.",
    ),
    "speech_en_female": (
        "en-gb+f3",
        165,
        "The weather tomorrow will be cloudy in the morning with some sunny spells later. "
        "Winds will be light, and temperatures will reach fourteen degrees in the afternoon. "
        "The outlook for the weekend is dry and bright.",
    ),
    "speech_de": (
        "de",
        150,
        "Guten Tag, hier ist die Mailbox von Familie Schneider. Wir sind im Moment leider "
        "nicht erreichbar. Bitte hinterlassen Sie nach dem Signalton eine Nachricht, wir "
        "rufen so bald wie möglich zurück.",
    ),
}
TRAIN_TEXTS = {
    "en": "Before the concert begins, please switch off your phones. The second half starts "
    "at nine o'clock, and drinks are served in the foyer during the interval. Thank you.",
    "de": "Der Zug nach Hamburg fährt heute von Gleis sieben ab. Wegen einer Baustelle "
    "verlängert sich die Fahrzeit um etwa zwanzig Minuten. Wir bitten um Verständnis.",
    "fr": "Bonjour à tous. La réunion de demain commencera à dix heures dans la grande salle. "
    "Merci d'apporter les documents que nous avons envoyés la semaine dernière.",
    "es": "Buenos días. El museo abre a las diez y cierra a las seis de la tarde. Las visitas "
    "guiadas salen cada hora desde la entrada principal del edificio.",
    "it": "Gentili ospiti, la colazione è servita dalle sette alle dieci nella sala al primo "
    "piano. Per qualsiasi richiesta potete rivolgervi alla reception.",
}
TRAIN_VOICES = [
    ("en", "en-us+m3", 140), ("en", "en-gb+f2", 175), ("en", "en-us+f4", 160),
    ("en", "en-gb-scotland+m1", 150), ("de", "de+m2", 145), ("de", "de+f1", 165),
    ("fr", "fr+m4", 155), ("fr", "fr+f3", 170), ("es", "es+m1", 150), ("es", "es+f2", 165),
    ("it", "it+m2", 150), ("it", "it+f4", 160),
]  # fmt: skip

TEST_INSTRUMENTS = {  # kind -> (General MIDI program, 0-based, or -1 for drums), phrase
    "violin": (40, "melody"),
    "flute": (73, "melody"),
    "trumpet": (56, "melody"),
    "organ": (19, "chorale"),
    "drums": (-1, "drums"),
    "cello": (42, "bass_melody"),
    "clarinet": (71, "melody"),
    "strings": (48, "chorale"),
    "choir": (52, "chorale"),
}
TEST_PIANO = {"piano_melody": (0, "melody"), "piano_chorale": (0, "chorale")}
TRAIN_MELODIC = [
    40,
    41,
    42,
    43,
    56,
    57,
    58,
    60,
    64,
    65,
    66,
    68,
    69,
    70,
    71,
    72,
    73,
    74,
    75,
    80,
    81,
    22,
    21,
]
TRAIN_SUSTAINED = [16, 17, 18, 19, 20, 44, 48, 49, 50, 52, 53, 54, 61, 88, 89, 91]
TRAIN_PIANO = [0, 1]

# A 16-beat melody in G major (pitch, beats), a four-part chorale (one chord per two beats),
# a drum groove (beat, GM percussion key: kick 36, snare 38, closed hi-hat 42, crash 49).
MELODY = [
    (67, 1), (71, 0.5), (74, 0.5), (79, 1.5), (78, 0.5), (76, 1), (74, 1), (72, 0.5),
    (71, 0.5), (69, 1), (67, 0.5), (69, 0.5), (71, 2), (74, 1), (72, 0.5), (71, 0.5),
    (69, 1), (66, 1), (67, 2),
]  # fmt: skip
CHORALE = [
    (79, 74, 71, 55), (78, 74, 69, 50), (76, 72, 67, 52), (74, 71, 67, 55),
    (76, 72, 69, 57), (74, 71, 66, 50), (74, 69, 66, 50), (71, 67, 62, 43),
    (72, 67, 64, 48), (74, 71, 67, 47), (76, 72, 67, 45), (74, 69, 66, 50),
]  # fmt: skip
DRUMS = [
    (0, 36), (0, 42), (0.5, 42), (1, 38), (1, 42), (1.5, 42), (1.75, 36), (2, 36),
    (2, 42), (2.5, 42), (3, 38), (3, 42), (3.5, 42), (3.75, 38),
]  # fmt: skip
ARPEGGIO = [60, 64, 67, 72, 67, 64, 62, 65, 69, 74, 69, 65, 59, 62, 67, 71, 67, 62]


def phrase_notes(phrase: str, beats: float, shift: int = 0) -> list[tuple[float, float, int, int]]:
    """(start beat, length in beats, pitch, velocity) of ``phrase`` repeated over ``beats``."""
    notes: list[tuple[float, float, int, int]] = []
    beat = 0.0
    while beat < beats:
        if phrase in ("melody", "bass_melody"):
            low = -24 if phrase == "bass_melody" else 0
            for pitch, length in MELODY:
                notes.append((beat, length * 0.95, pitch + low + shift, 90))
                beat += length
        elif phrase == "chorale":
            for chord in CHORALE:
                notes += [(beat, 1.95, p + shift, 80) for p in chord]
                beat += 2
        elif phrase == "arpeggio":
            for pitch in ARPEGGIO:
                notes.append((beat, 0.45, pitch + shift, 85))
                beat += 0.5
        else:  # drums; ``shift`` picks a variant (half-time, busier hats)
            for b, key in DRUMS:
                if shift % 2 and key == 38:
                    continue
                notes.append((beat + b, 0.25, key, 100 if key != 42 else 70))
            if shift % 3 == 1:
                notes += [(beat + b / 4, 0.1, 42, 55) for b in range(16)]
            notes.append((beat, 1.0, 49, 90))
            beat += 4
    return [n for n in notes if n[0] < beats]


def write_midi(program: int, phrase: str, path: Path, bpm: float = 100, shift: int = 0) -> None:
    import mido

    beats = SECONDS * bpm / 60
    channel = 9 if program < 0 else 0
    events = []
    for start, length, pitch, velocity in phrase_notes(phrase, beats, shift):
        events.append((round(start * TICKS), 1, pitch, velocity))
        events.append((round(min(start + length, beats) * TICKS), 0, pitch, 0))
    events.sort()
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    if program >= 0:
        track.append(mido.Message("program_change", program=program, channel=channel, time=0))
    now = 0
    for tick, on, pitch, velocity in events:
        kind = "note_on" if on else "note_off"
        track.append(
            mido.Message(kind, note=pitch, velocity=velocity, channel=channel, time=tick - now)
        )
        now = tick
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    midi.tracks.append(track)
    midi.save(path)


def render(
    program: int, phrase: str, font: str, tmp: Path, bpm: float = 100, shift: int = 0
) -> np.ndarray:
    midi = tmp / "phrase.mid"
    write_midi(program, phrase, midi, bpm, shift)
    return fit(render_midi(midi, FONTS[font], SAMPLE_RATE))


def speak(voice: str, wpm: int, text: str, tmp: Path) -> np.ndarray:
    """espeak-ng speech resampled to SAMPLE_RATE, padded or cut to SECONDS."""
    import soxr

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng not found: apt-get install -y espeak-ng")
    wav = tmp / "speech.wav"
    subprocess.run([exe, "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True)
    y, sr = sf.read(wav, dtype="float32", always_2d=True)
    return fit(soxr.resample(y.mean(axis=1), sr, SAMPLE_RATE).astype(np.float32))


def fit(y: np.ndarray) -> np.ndarray:
    n = round(SECONDS * SAMPLE_RATE)
    y = np.pad(y, (0, max(0, n - len(y))))[:n]
    fade = round(0.05 * SAMPLE_RATE)
    y[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return normalise(y)


def tool_versions() -> str:
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    synth = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True).stdout
    return f"{espeak.strip()}; {synth.splitlines()[0] if synth else 'fluidsynth ?'}"


def write_clip(out: Path, kind: str, group: str, y: np.ndarray, how: str) -> dict:
    path = out / f"{kind}.ogg"
    sf.write(
        path, y, SAMPLE_RATE, format="OGG", subtype="VORBIS", compression_level=1 - OGG_QUALITY
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"kind": kind, "group": group, "file": path.name, "made_with": how, "sha256": digest}


def build_test_clips(out: Path, tmp: Path) -> list[dict]:
    clips = []
    for kind, (voice, wpm, text) in TEST_SPEECH.items():
        how = f"espeak-ng -v {voice} -s {wpm}: {text!r}"
        clips.append(write_clip(out, kind, "speech", speak(voice, wpm, text, tmp), how))
    for group, table in (("instrument", TEST_INSTRUMENTS), ("piano", TEST_PIANO)):
        for kind, (program, phrase) in table.items():
            where = "percussion channel" if program < 0 else f"GM program {program}"
            how = f"fluidsynth + FluidR3_GM.sf2, {where}, phrase {phrase!r} at 100 bpm"
            clips.append(write_clip(out, kind, group, render(program, phrase, "fluidr3", tmp), how))
    return clips


def training_audio(tmp: Path):
    """(kind, group, is_piano, samples) of every training clip; none is a test clip."""
    for kind in nonmusic.GENERATED:
        for seed in TRAIN_SEEDS:
            yield (
                kind,
                "generated",
                False,
                nonmusic.generate(kind, TRAIN_SECONDS, SAMPLE_RATE, seed),
            )
    for language, voice, wpm in TRAIN_VOICES:
        yield f"speech_{language}", "speech", False, speak(voice, wpm, TRAIN_TEXTS[language], tmp)
    rng = np.random.default_rng(20261203)
    for font in FONTS:
        for programs, phrases, piano in (
            (TRAIN_MELODIC, ("melody", "arpeggio", "bass_melody"), False),
            (TRAIN_SUSTAINED, ("chorale", "melody", "arpeggio"), False),
            (TRAIN_PIANO, ("melody", "chorale", "arpeggio", "bass_melody"), True),
            ([-1], ("drums",) * 3, False),
        ):
            for program in programs:
                for phrase in phrases:
                    if not piano and rng.random() < 0.4:  # a subset keeps the build cheap
                        continue
                    bpm, shift = float(rng.uniform(70, 140)), int(rng.integers(-7, 8))
                    kind = "drums" if program < 0 else f"gm{program:03d}_{phrase}"
                    group = "piano" if piano else "instrument"
                    yield kind, group, piano, render(program, phrase, font, tmp, bpm, shift)


def build_training_rows(out: Path, tmp: Path) -> pd.DataFrame:
    config = FeatureConfig()
    frames, started = [], time.process_time()
    for clip, (kind, group, piano, y) in enumerate(training_audio(tmp)):
        rows = featurize_audio(y, config)
        rows.insert(0, "is_piano", piano)
        rows.insert(0, "group", group)
        rows.insert(0, "kind", kind)
        rows.insert(0, "clip", clip)
        frames.append(rows)
    table = pd.concat(frames, ignore_index=True)
    table.to_parquet(out / "train_rows.parquet", index=False)
    cpu = time.process_time() - started
    print(f"{len(table)} training rows from {clip + 1} clips, {cpu:.0f} CPU-s")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/negatives"))
    parser.add_argument("--no-train", action="store_true", help="test clips only")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="negatives_") as name:
        tmp = Path(name)
        clips = build_test_clips(args.out, tmp)
        index = {
            "built_by": "scripts/build_negatives.py",
            "tools": tool_versions(),
            "sample_rate": SAMPLE_RATE,
            "seconds": SECONDS,
            "clips": clips,
        }
        (args.out / "clips.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")
        total = sum((args.out / c["file"]).stat().st_size for c in clips)
        print(f"{len(clips)} test clips, {total / 1024:.0f} KiB in {args.out}")
        if not args.no_train:
            build_training_rows(args.out, tmp)


if __name__ == "__main__":
    main()
