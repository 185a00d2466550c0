"""core.render: seeded humanising and audio augmentation, fluidsynth rendering of tiny MIDI."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

from core import render
from core.datasets.works import work_of
from tests.conftest import require_system

pytestmark = pytest.mark.unit
SR = 22050


def scale_midi(path: Path, notes=(60, 62, 64, 65, 67), beat_ticks: int = 240) -> Path:
    """A C-major run at 120 bpm (480 ticks per beat), a sustain pedal press in the middle."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("program_change", program=0, time=0))
    for i, note in enumerate(notes):
        track.append(mido.Message("note_on", note=note, velocity=70 + 5 * i, time=0))
        if i == 2:
            track.append(mido.Message("control_change", control=64, value=127, time=10))
            track.append(mido.Message("note_off", note=note, time=beat_ticks - 10))
        else:
            track.append(mido.Message("note_off", note=note, time=beat_ticks))
    mid.save(str(path))
    return path


def notes_of(path: Path) -> list[tuple[float, float, int, int]]:
    """(onset s, offset s, pitch, velocity) of every note."""
    now, open_, out = 0.0, {}, []
    for msg in mido.MidiFile(str(path)):
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_[msg.note] = (now, msg.velocity)
        elif msg.type in ("note_on", "note_off") and msg.note in open_:
            start, vel = open_.pop(msg.note)
            out.append((start, now, msg.note, vel))
    return sorted(out)


def test_work_rule_strips_movement_numbers_not_catalogue_numbers():
    assert work_of("Sonata_No.8_C_minor_Opus_13_2") == "Sonata_No.8_C_minor_Opus_13"
    assert work_of("Preludes_Opus_28_15") == "Preludes_Opus_28"
    assert work_of("Ballad_G_minor_Opus_23") == "Ballad_G_minor_Opus_23"
    assert work_of("Suite_espanola_Cadiz") == "Suite_espanola_Cadiz"


def test_identity_humanise_keeps_the_notes(tmp_path):
    src = scale_midi(tmp_path / "a.mid")
    tmap = render.humanise_midi(
        src, tmp_path / "b.mid", render.Humanise(), np.random.default_rng(0)
    )
    before, after = notes_of(src), notes_of(tmp_path / "b.mid")
    assert [n[2:] for n in before] == [n[2:] for n in after]
    np.testing.assert_allclose([n[:2] for n in before], [n[:2] for n in after], atol=1e-3)
    assert tmap(1.0) == pytest.approx(1.0, abs=1e-6)


def test_tempo_scale_and_drift_warp_time_monotonically():
    faster = render.time_map(render.Humanise(tempo_scale=1.25), 60.0)
    assert faster(10.0) == pytest.approx(8.0, rel=1e-3)
    h = render.Humanise.draw(np.random.default_rng(3))
    tmap = render.time_map(h, 120.0)
    assert np.all(np.diff(tmap.warped) > 0)
    # a smooth drift of a few percent: never more than 20 % off the global scale
    assert abs(tmap(100.0) - 100.0 / h.tempo_scale) < 20.0


def test_humanised_midi_keeps_pitches_moves_onsets_and_changes_velocities(tmp_path):
    src = scale_midi(tmp_path / "a.mid")
    h = render.Humanise(velocity_scale=0.5, jitter_ms=8.0)
    render.humanise_midi(src, tmp_path / "b.mid", h, np.random.default_rng(1))
    before, after = notes_of(src), notes_of(tmp_path / "b.mid")
    assert sorted(n[2] for n in after) == sorted(n[2] for n in before)
    onset_shift = np.array([a[0] - b[0] for a, b in zip(after, before, strict=True)])
    assert 0 < np.abs(onset_shift).max() < 0.05
    durations = [(a[1] - a[0], b[1] - b[0]) for a, b in zip(after, before, strict=True)]
    np.testing.assert_allclose(*zip(*durations, strict=True), atol=2e-3)  # off moves with on
    assert all(a[3] < b[3] for a, b in zip(after, before, strict=True))


def test_until_cuts_the_midi_with_notes_and_pedal_off(tmp_path):
    src = scale_midi(tmp_path / "a.mid")
    render.humanise_midi(src, tmp_path / "b.mid", render.Humanise(), np.random.default_rng(0), 0.6)
    msgs = list(mido.MidiFile(str(tmp_path / "b.mid")))
    assert sum(m.type == "note_on" and m.velocity > 0 for m in msgs) == 3  # 0, 0.25, 0.5 s
    assert any(m.type == "control_change" and m.control == 123 for m in msgs)


def test_audio_augmentation_is_seeded_and_noise_meets_its_snr():
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    y = (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-t)).astype(np.float32)
    aug = render.AudioAugment(rt60_s=0.5, wet=0.3, tilt_db=4.0, snr_db=20.0, seed=7)
    a, b = aug.apply(y, SR), aug.apply(y, SR)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render.AudioAugment(**{**aug.__dict__, "seed": 8}).apply(y, SR))
    assert np.max(np.abs(a)) == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    noisy = render.add_noise(y.astype(np.float64), 20.0, rng)
    snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((noisy - y) ** 2))
    assert snr == pytest.approx(20.0, abs=0.1)
    drawn = render.AudioAugment.draw(np.random.default_rng(5))
    assert drawn == render.AudioAugment.draw(np.random.default_rng(5))
    assert "tilt" in drawn.describe()


def test_eq_tilt_brightens_highs_and_cuts_lows():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(4 * SR)
    spectrum = np.abs(np.fft.rfft(render.eq_tilt(noise, SR, 12.0))) / np.abs(np.fft.rfft(noise))
    freqs = np.fft.rfftfreq(len(noise), 1 / SR)
    low = np.median(spectrum[(freqs > 30) & (freqs < 100)])
    high = np.median(spectrum[freqs > 6000])
    assert 20 * np.log10(high / low) == pytest.approx(12.0, abs=1.5)


def test_missing_soundfont_names_what_to_install(monkeypatch):
    monkeypatch.setitem(render.SOUNDFONTS, "timgm6mb", ("/nonexistent/TimGM6mb.sf2",))
    with pytest.raises(render.RenderError, match="apt-get install timgm6mb-soundfont"):
        render.resolve_soundfont("timgm6mb")
    with pytest.raises(render.RenderError, match="not found"):
        render.resolve_soundfont("/nonexistent/piano.sf2")


def test_missing_fluidsynth_names_what_to_install(monkeypatch):
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(render.RenderError, match="apt-get install fluidsynth"):
        render.fluidsynth_binary()


def test_render_augmented_is_deterministic_per_seed(tmp_path):
    require_system("fluidsynth", "soundfont")
    src = scale_midi(tmp_path / "a.mid")
    a = render.render_augmented(src, "timgm6mb", SR, seed=11)
    b = render.render_augmented(src, "timgm6mb", SR, seed=11)
    c = render.render_augmented(src, "timgm6mb", SR, seed=12)
    assert a.samples.dtype == np.float32 and a.samples.ndim == 1
    assert len(a.samples) > SR  # 1.25 s of notes plus the release
    assert np.array_equal(a.samples, b.samples)
    assert a.describe() == b.describe() != c.describe()
    assert not np.array_equal(a.samples[: len(c.samples)], c.samples[: len(a.samples)])
