"""Audio -> piano notes with Spotify's basic-pitch network (ICASSP 2022, Apache-2.0).

The network ships in the repo as ``core/assets/basic_pitch_nmp.onnx`` (copied unchanged from
the basic-pitch 0.4.0 wheel; see NOTICE) and runs on onnxruntime alone: the basic-pitch package
itself would pull TensorFlow (numpy < 2) and print backend warnings at import, and we need only
its network and its note decoding, which is ported below (``_decode_notes``) from
``basic_pitch.note_creation.output_to_notes_polyphonic`` with the package's default thresholds.

One onnxruntime session per process (one intra-op thread: parallelism comes from worker
processes and concurrent requests), created lazily on first use and never pickled: worker
processes and Airflow tasks each build their own.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parent / "assets"
FLOAT_MODEL = ASSETS / "basic_pitch_nmp.onnx"
INT8_MODEL = ASSETS / "basic_pitch_nmp.int8.onnx"  # scripts/quantize_transcriber.py

SAMPLE_RATE = 22050  # the network's input rate
FFT_HOP = 256
WINDOW_SAMPLES = SAMPLE_RATE * 2 - FFT_HOP  # 43844 samples in, 172 frames out per window
WINDOW_FRAMES = 172
N_KEYS = 88
MIDI_A0 = 21
_INPUT = "serving_default_input_2:0"
_OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2")  # note, onset

# basic-pitch's predict() defaults
ONSET_THRESHOLD = 0.5
FRAME_THRESHOLD = 0.3
MIN_NOTE_FRAMES = 11  # round(127.7 ms * 22050 / 256)
ENERGY_TOLERANCE = 11


@dataclass(frozen=True)
class Transcription:
    """Notes (one entry per note, sorted by onset then pitch) and the frame posteriorgram.

    ``posteriorgram[k, p]`` is the network's probability that key ``p`` (0 = A0, MIDI 21) sounds
    in frame ``k``, centred at ``k / frame_rate`` seconds.
    """

    onset_s: np.ndarray  # float32
    offset_s: np.ndarray  # float32
    pitch: np.ndarray  # int16, MIDI
    amplitude: np.ndarray  # float32, mean frame probability over the note (0..1)
    posteriorgram: np.ndarray = field(repr=False)  # float32, frames x 88
    frame_rate: float
    duration_s: float

    def __len__(self) -> int:
        return len(self.pitch)

    @classmethod
    def empty(cls, duration_s: float = 0.0, frame_rate: float = 1.0) -> Transcription:
        none = np.zeros(0, dtype=np.float32)
        return cls(
            onset_s=none,
            offset_s=none,
            pitch=np.zeros(0, dtype=np.int16),
            amplitude=none,
            posteriorgram=np.zeros((0, N_KEYS), dtype=np.float32),
            frame_rate=frame_rate,
            duration_s=duration_s,
        )


class Transcriber:
    """One onnxruntime session over one variant of the network.

    The defaults are the served variant: the float network with basic-pitch's 30 overlapping
    frames, batched, all graph optimisations (what the shipped v4 pack was built with). The
    int8 network (``INT8_MODEL``, ``scripts/quantize_transcriber.py``) with 20 overlapping
    frames is ~1.25x cheaper still at nearly the same onset F1 (``make bench-transcription``),
    but changes the note features' values: serving it needs a pack rebuild and a schema bump.

    ``overlap_frames`` is how many output frames neighbouring 2 s windows share (basic-pitch
    uses 30; half of them are cut from each window's edges). All windows of a clip go through
    the network in batches of ``batch_windows`` (one ``run`` call each). ``optimize`` turns on
    all of onnxruntime's graph optimisations (layout transforms, fusions).
    """

    def __init__(
        self,
        model_path: Path = FLOAT_MODEL,
        overlap_frames: int = 30,
        batch_windows: int = 32,
        optimize: bool = True,
    ) -> None:
        if overlap_frames % 2 or not 0 <= overlap_frames < WINDOW_FRAMES:
            raise ValueError("overlap_frames must be even and smaller than a window")
        self.model_path = Path(model_path)
        self.overlap_frames = overlap_frames
        self.batch_windows = batch_windows
        self.optimize = optimize
        self._session = None
        self._lock = threading.Lock()

    @property
    def hop_samples(self) -> int:
        return WINDOW_SAMPLES - self.overlap_frames * FFT_HOP

    @property
    def frame_rate(self) -> float:
        """Frames per second after unwrapping: each window advances ``hop_samples`` and keeps
        ``172 - overlap`` frames (the network's frame period is 43844/172 samples, not 256)."""
        return SAMPLE_RATE * (WINDOW_FRAMES - self.overlap_frames) / self.hop_samples

    def session(self):
        """The process's session, built on first use (never pickled: see ``__getstate__``)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = _new_session(self.model_path, self.optimize)
        return self._session

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_session"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def posteriorgrams(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(note, onset) probabilities, frames x 88 each, for mono audio at 22050 Hz."""
        n_frames = int(np.floor(len(audio) * self.frame_rate / SAMPLE_RATE))
        half = self.overlap_frames // 2
        padded = np.concatenate([np.zeros(half * FFT_HOP, np.float32), audio.astype(np.float32)])
        starts = range(0, len(padded), self.hop_samples)
        windows = np.zeros((len(starts), WINDOW_SAMPLES, 1), dtype=np.float32)
        for row, start in enumerate(starts):
            chunk = padded[start : start + WINDOW_SAMPLES]
            windows[row, : len(chunk), 0] = chunk
        session = self.session()
        notes, onsets = [], []
        for first in range(0, len(windows), self.batch_windows):
            note, onset = session.run(
                list(_OUTPUTS), {_INPUT: windows[first : first + self.batch_windows]}
            )
            notes.append(note)
            onsets.append(onset)
        return _unwrap(np.concatenate(notes), half, n_frames), _unwrap(
            np.concatenate(onsets), half, n_frames
        )

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> Transcription:
        """Notes of a mono clip at any sample rate (resampled to 22050 Hz only if needed)."""
        audio = np.asarray(samples, dtype=np.float32).ravel()
        if sample_rate != SAMPLE_RATE and len(audio):
            import soxr  # librosa's resampler; imported here so the module stays light

            audio = soxr.resample(audio, sample_rate, SAMPLE_RATE).astype(np.float32)
        duration = len(audio) / SAMPLE_RATE
        if len(audio) == 0 or not np.isfinite(audio).all():
            return Transcription.empty(duration, self.frame_rate)
        note, onset = self.posteriorgrams(audio)
        events = _decode_notes(note, onset)
        times = np.arange(len(note) + 1, dtype=np.float64) / self.frame_rate
        return Transcription(
            onset_s=times[events[:, 0].astype(int)].astype(np.float32),
            offset_s=times[events[:, 1].astype(int)].astype(np.float32),
            pitch=(events[:, 2] + MIDI_A0).astype(np.int16),
            amplitude=events[:, 3].astype(np.float32),
            posteriorgram=note,
            frame_rate=self.frame_rate,
            duration_s=duration,
        )


_default: Transcriber | None = None
_default_pid: int | None = None


def default_transcriber() -> Transcriber:
    """The served transcriber of this process (a fresh one after a fork)."""
    global _default, _default_pid
    if _default is None or _default_pid != os.getpid():
        _default, _default_pid = Transcriber(), os.getpid()
    return _default


def transcribe(samples: np.ndarray, sample_rate: int) -> Transcription:
    """Notes of a mono clip with the served transcriber (see ``default_transcriber``)."""
    return default_transcriber().transcribe(samples, sample_rate)


def _new_session(model_path: Path, optimize: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    level = "ORT_ENABLE_ALL" if optimize else "ORT_ENABLE_BASIC"  # basic: the bench's baseline
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 3  # errors only: ordinary commands stay quiet
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _unwrap(output: np.ndarray, half: int, n_frames: int) -> np.ndarray:
    """Windows x 172 x 88 -> frames x 88: drop ``half`` overlap frames at each window edge,
    concatenate, trim to the audio's length."""
    if half:
        output = output[:, half:-half, :]
    flat = output.reshape(-1, output.shape[-1])[:n_frames]
    return np.ascontiguousarray(flat, dtype=np.float32)


def _decode_notes(
    frames: np.ndarray,
    onsets: np.ndarray,
    onset_threshold: float = ONSET_THRESHOLD,
    frame_threshold: float = FRAME_THRESHOLD,
    min_frames: int = MIN_NOTE_FRAMES,
    tolerance: int = ENERGY_TOLERANCE,
) -> np.ndarray:
    """basic-pitch's polyphonic note decoding (inferred onsets + the "melodia trick"), with the
    frame-by-frame scans replaced by run searches over whole columns. Returns an array of
    (start frame, end frame, key, amplitude) rows sorted by start then key.

    Ported from basic-pitch 0.4.0 ``note_creation.output_to_notes_polyphonic``
    (Copyright 2022 Spotify AB, Apache-2.0); same results on the same inputs.
    """
    n_frames = frames.shape[0]
    if n_frames < 3:
        return np.zeros((0, 4))
    onsets = _inferred_onsets(onsets, frames)
    inner = onsets[1:-1]
    is_peak = (inner > onsets[:-2]) & (inner > onsets[2:]) & (inner >= onset_threshold)
    peak_t, peak_f = np.nonzero(is_peak)
    peak_t = peak_t + 1
    remaining = frames.astype(np.float32, copy=True)
    events: list[tuple[int, int, int, float]] = []
    # backwards in time (and down in pitch), as basic-pitch does: later notes claim energy first
    for start, key in zip(peak_t[::-1].tolist(), peak_f[::-1].tolist(), strict=True):
        if start >= n_frames - 1:
            continue
        done, below = _scan(remaining[start + 1 : n_frames - 1, key] < frame_threshold, tolerance)
        end = start + 1 + done - below
        if end - start <= min_frames:
            continue
        remaining[start:end, max(key - 1, 0) : key + 2] = 0.0
        events.append((start, end, key, float(frames[start:end, key].mean())))

    while True:  # melodia trick: notes from leftover frame energy without an onset peak
        flat = int(np.argmax(remaining))
        mid, key = divmod(flat, N_KEYS)
        if remaining[mid, key] <= frame_threshold:
            break
        remaining[mid, key] = 0.0
        cols = slice(max(key - 1, 0), key + 2)
        done, below = _scan(remaining[mid + 1 : n_frames - 1, key] < frame_threshold, tolerance)
        remaining[mid + 1 : mid + 1 + done, cols] = 0.0
        end = mid + done - below
        done, below = _scan(remaining[1:mid, key][::-1] < frame_threshold, tolerance)
        remaining[mid - done : mid, cols] = 0.0
        start = mid - done + below
        if end - start <= min_frames:
            continue
        events.append((start, end, key, float(frames[start:end, key].mean())))
    if not events:
        return np.zeros((0, 4))
    table = np.asarray(events, dtype=np.float64)
    return table[np.lexsort((table[:, 2], table[:, 0]))]


def _scan(below: np.ndarray, tolerance: int) -> tuple[int, int]:
    """basic-pitch's scan along one key: walk while fewer than ``tolerance`` consecutive frames
    are below threshold. Returns (frames walked, trailing below-threshold run at the stop)."""
    n = len(below)
    if n >= tolerance:
        runs = np.convolve(below.view(np.int8), np.ones(tolerance, np.int8), mode="valid")
        hits = np.flatnonzero(runs == tolerance)
        if len(hits):
            return int(hits[0]) + tolerance, tolerance
    above = np.flatnonzero(~below)
    return n, n - 1 - int(above[-1]) if len(above) else n


def _inferred_onsets(onsets: np.ndarray, frames: np.ndarray, n_diff: int = 2) -> np.ndarray:
    """Onsets plus large frame-to-frame rises (basic-pitch ``get_infered_onsets``)."""
    diffs = []
    for n in range(1, n_diff + 1):
        shifted = np.concatenate([np.zeros((n, frames.shape[1]), frames.dtype), frames[:-n]])
        diffs.append(frames - shifted)
    rise = np.maximum(np.min(diffs, axis=0), 0.0)
    rise[:n_diff] = 0.0
    top = rise.max()
    if top > 0:
        rise = rise * (onsets.max() / top)
    return np.maximum(onsets, rise)
