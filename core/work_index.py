"""Known-work recognition: which indexed piece a transcribed clip comes from, and where.

The index holds one CENS chroma sequence per piece (``core.chroma``, built from the MIDI
score by ``scripts/build_work_index.py``), stored as uint8 so the model file that carries it
stays small. A query's notes go through the same chroma function; matching is a cheap
shortlist over the whole index (the query correlated at every offset of every piece, at a
few tempo ratios: one matrix product and strided diagonal sums per ratio), then a precise
re-rank of the best few pieces by subsequence DTW, whose mean cost along the path gives the
score. ``threshold`` is calibrated on held-out clips (README in ``data/works``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import chroma

FORMAT = "composer-works/v1"
TEMPO_RATIOS = (0.87, 0.93, 1.0, 1.07, 1.15)  # score seconds per performed second, tried
SHORTLIST = 6  # pieces re-ranked by DTW
MIN_NOTES = 12  # fewer transcribed notes: nothing to match
MIN_FRAMES = 8  # shortest query (seconds x RATE) worth matching
MAX_QUERY_FRAMES = 64  # longer queries are matched on their first 32 s
META_COLUMNS = ["piece", "work", "title", "composer"]


@dataclass(frozen=True)
class WorkMatch:
    piece: str  # e.g. "Chopin/chpn_op10_e12" (pieces.csv ``piece``)
    work: str
    title: str
    composer: str
    position_s: float  # where the clip starts, in seconds of the score at its MIDI tempo
    score: float  # DTW similarity in [0, 1]; accepted when >= the index's threshold


def transcription_notes(transcription: Any) -> chroma.NoteList:
    """A ``core.transcription.Transcription``'s notes as chroma input (amplitude as weight)."""
    return chroma.NoteList(
        onset_s=np.asarray(transcription.onset_s, dtype=np.float64),
        offset_s=np.asarray(transcription.offset_s, dtype=np.float64),
        pitch=np.asarray(transcription.pitch, dtype=np.int64),
        weight=np.asarray(transcription.amplitude, dtype=np.float64),
    )


class WorkIndex:
    """Pieces' CENS sequences (uint8, concatenated) with their metadata and threshold."""

    def __init__(
        self, meta: pd.DataFrame, frames: np.ndarray, lengths: np.ndarray, threshold: float
    ) -> None:
        self.meta = meta[META_COLUMNS].reset_index(drop=True)
        self.frames = np.ascontiguousarray(frames, dtype=np.uint8)  # total frames x 12
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.threshold = float(threshold)
        self._flat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see _matrix

    # ------------------------------------------------------------------ building, storing

    @classmethod
    def from_sequences(
        cls, meta: pd.DataFrame, sequences: list[np.ndarray], threshold: float = 1.0
    ) -> WorkIndex:
        frames = np.concatenate([chroma.to_uint8(s) for s in sequences])
        return cls(meta, frames, np.array([len(s) for s in sequences]), threshold)

    def with_threshold(self, threshold: float) -> WorkIndex:
        return WorkIndex(self.meta, self.frames, self.lengths, threshold)

    def save(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "index.npz", frames=self.frames, lengths=self.lengths)
        self.meta.assign(frames=self.lengths).to_csv(folder / "pieces.csv", index=False)
        manifest = {
            "format": FORMAT,
            "pieces": len(self.meta),
            "works": int(self.meta["work"].nunique()),
            "frames": int(self.lengths.sum()),
            "threshold": self.threshold,
            "chroma": {
                "rate_hz": chroma.RATE,
                "fine_rate_hz": chroma.FINE_RATE,
                "smooth_s": chroma.SMOOTH_S,
                "note_cap_s": chroma.NOTE_CAP_S,
            },
            **(extra or {}),
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> WorkIndex:
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{folder}: not a {FORMAT} work index")
        with np.load(folder / "index.npz") as stored:
            frames, lengths = stored["frames"], stored["lengths"]
        meta = pd.read_csv(folder / "pieces.csv")
        if len(meta) != len(lengths) or int(lengths.sum()) != len(frames):
            raise ValueError(f"{folder}: pieces.csv and index.npz disagree")
        return cls(meta, frames, lengths, float(manifest["threshold"]))

    def restrict(self, works: set[str]) -> WorkIndex:
        """Only the pieces of these works (e.g. the training set's works)."""
        keep = self.meta["work"].isin(works).to_numpy()
        rows = [
            self.frames[s : s + n]
            for s, n, k in zip(self.starts, self.lengths, keep, strict=True)
            if k
        ]
        frames = np.concatenate(rows) if rows else np.zeros((0, 12), dtype=np.uint8)
        return WorkIndex(self.meta[keep], frames, self.lengths[keep], self.threshold)

    def __len__(self) -> int:
        return len(self.meta)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_flat"] = None  # rebuilt on first match: the pickle stays uint8
        return state

    # ------------------------------------------------------------------ matching

    def match(self, transcription: Any) -> WorkMatch | None:
        """The recognised piece, or None when the best candidate scores below threshold."""
        found = self.search(transcription_notes(transcription), transcription.duration_s)
        return found if found is not None and found.score >= self.threshold else None

    def search(self, notes: chroma.NoteList, duration_s: float) -> WorkMatch | None:
        """The best-scoring piece whatever its score (None only for too little music)."""
        ranked = self.ranked(notes, duration_s)
        if not ranked:
            return None
        _, piece, position = ranked[0]
        row = self.meta.iloc[piece]
        return WorkMatch(
            piece=str(row["piece"]),
            work=str(row["work"]),
            title=str(row["title"]),
            composer=str(row["composer"]),
            position_s=round(position / chroma.RATE, 1),
            score=round(match_score(ranked, self.meta["work"].to_numpy()), 4),
        )

    def ranked(self, notes: chroma.NoteList, duration_s: float) -> list[tuple[float, int, int]]:
        """The shortlisted pieces as (DTW similarity, piece, start frame), best first."""
        if len(notes.pitch) < MIN_NOTES or len(self) == 0:
            return []
        queries = {
            r: _trim(chroma.notes_cens(notes.scaled(r), duration_s * r)) for r in TEMPO_RATIOS
        }
        if len(queries[1.0]) < MIN_FRAMES:
            return []
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):  # small products: threads only spin
            shortlist = self.shortlist(queries)
        found = [
            (*self._dtw(queries[ratio][:MAX_QUERY_FRAMES], piece, offset), piece)
            for piece, offset, ratio in shortlist
        ]
        return sorted(((sim, piece, pos) for sim, pos, piece in found), reverse=True)

    def shortlist(self, queries: dict[float, np.ndarray]) -> list[tuple[int, int, float]]:
        """(piece, frame offset, ratio) of the ``SHORTLIST`` pieces whose best diagonal
        correlation with the query (any offset, any tempo ratio) is highest."""
        flat, starts, valid = self._matrix()
        diags: dict[float, np.ndarray] = {}
        best = np.full(len(self), -np.inf)
        best_ratio = np.ones(len(self))
        for ratio, query in queries.items():
            q = query[:MAX_QUERY_FRAMES]
            n_q = len(q)
            heard = int(q.any(axis=1).sum())
            if heard == 0:
                continue
            n_pos = len(flat) - n_q + 1
            diag = _diagonal_sums(flat, q) / heard
            diag = np.where(valid[:n_pos], diag, -np.inf)
            diags[ratio] = diag
            top = np.maximum.reduceat(diag, starts)
            better = top > best
            best[better] = top[better]
            best_ratio[better] = ratio
        chosen = [int(p) for p in np.argsort(-best)[:SHORTLIST] if np.isfinite(best[p])]
        out = []
        for p in chosen:
            ratio = float(best_ratio[p])
            s, n = int(starts[p]), int(self.lengths[p])
            out.append((p, int(np.argmax(diags[ratio][s : s + n])), ratio))
        return out

    def _dtw(self, query: np.ndarray, piece: int, offset: int) -> tuple[float, int]:
        """Subsequence DTW of the query against the piece around ``offset``: (similarity,
        start frame in the piece)."""
        import librosa

        n_q = len(query)
        lo = max(0, offset - n_q // 2)
        hi = min(int(self.lengths[piece]), offset + n_q + n_q // 2)
        flat, starts, _ = self._matrix()
        region = flat[int(starts[piece]) + lo : int(starts[piece]) + hi]
        if len(region) < n_q:  # a piece shorter than the clip: the rest costs fully
            region = np.vstack([region, np.zeros((n_q - len(region), 12), np.float32)])
        cost = 1.0 - query.astype(np.float64) @ region.T.astype(np.float64)
        acc, path = librosa.sequence.dtw(C=cost, subseq=True, backtrack=True)
        end = int(np.argmin(acc[-1]))
        similarity = 1.0 - float(acc[-1, end]) / len(path)
        return similarity, lo + int(path[-1, 1])

    def _matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float32 frames with ``MAX_QUERY_FRAMES`` zero frames after each piece (so no
        window runs from one piece into the next), each piece's start in it, and which
        frames are a piece's (not a gap's)."""
        if self._flat is None:
            gap = MAX_QUERY_FRAMES
            starts = self.starts + gap * np.arange(len(self))
            flat = np.zeros((int(self.lengths.sum()) + gap * len(self), 12), dtype=np.float32)
            valid = np.zeros(len(flat), dtype=bool)
            for s, s0, n in zip(starts, self.starts, self.lengths, strict=True):
                flat[s : s + n] = chroma.from_uint8(self.frames[s0 : s0 + n])
                valid[s : s + n] = True
            self._flat = (flat, starts, valid)
        return self._flat


def _trim(sequence: np.ndarray) -> np.ndarray:
    """Without leading and trailing silent frames (they would cost the same everywhere)."""
    heard = np.flatnonzero(sequence.any(axis=1))
    return sequence[heard[0] : heard[-1] + 1] if len(heard) else sequence[:0]


def _diagonal_sums(flat: np.ndarray, query: np.ndarray, block: int = 4096) -> np.ndarray:
    """``out[j] = sum_k query[k] . flat[j + k]`` for every start ``j``: per block of starts one
    matrix product, then its diagonals summed through a strided view (rows of the product
    shifted by one column each), so nothing larger than a block is ever materialised."""
    n_q = len(query)
    n_pos = len(flat) - n_q + 1
    out = np.empty(max(0, n_pos), dtype=np.float32)
    for b0 in range(0, n_pos, block):
        b = min(n_pos, b0 + block) - b0
        product = np.ascontiguousarray(query @ flat[b0 : b0 + b + n_q - 1].T)
        width = product.shape[1]
        item = product.itemsize
        out[b0 : b0 + b] = np.lib.stride_tricks.as_strided(
            product, shape=(n_q, b), strides=((width + 1) * item, item)
        ).sum(axis=0)
    return out


def match_score(ranked: list[tuple[float, int, int]], works: np.ndarray) -> float:
    """How much better the best piece fits than the best piece of another work:
    ``1 - d1 / d2`` with ``d = 1 - DTW similarity`` (0 = no better, 1 = perfect fit). A
    clip of an unindexed work fits several pieces about equally badly; a clip of an indexed
    one fits its own piece clearly better than any other."""
    best_sim, best_piece, _ = ranked[0]
    others = [sim for sim, piece, _ in ranked[1:] if works[piece] != works[best_piece]]
    runner_up = others[0] if others else 0.0
    d1, d2 = max(1.0 - best_sim, 1e-6), max(1.0 - runner_up, 1e-6)
    return float(max(0.0, 1.0 - d1 / d2))
