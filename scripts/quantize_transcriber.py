"""Build core/assets/basic_pitch_nmp.int8.onnx: basic-pitch's network with int8 convolutions.

Maintainer-only (needs the ``onnx`` package, a tooling requirement); the result is committed:

    .venv/bin/python -P scripts/quantize_transcriber.py

Static QDQ quantisation (onnxruntime.quantization): int8 weights per output channel, uint8
activations calibrated by min/max on 45 two-second windows of the demo corpus (every 12th
clip, at 0, 10 and 20 s). Only the 2-D convolutions after the constant-Q transform are
quantised: the CQT's own convolutions stay float (their QDQ graph does not even load in
onnxruntime 1.31, and they carry the audio's full dynamic range). Dynamic quantisation was
tried and rejected: its ConvInteger kernels made the network 4x slower. Deterministic: the
same inputs give the same file. Derived from basic-pitch 0.4.0 (Apache-2.0, see NOTICE).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from core.audio import load_audio  # noqa: E402
from core.transcription import FLOAT_MODEL, INT8_MODEL, SAMPLE_RATE, WINDOW_SAMPLES  # noqa: E402

INPUT = "serving_default_input_2:0"


def calibration_windows(demo_dir: Path = REPO / "data" / "demo") -> list[np.ndarray]:
    manifest = pd.read_csv(demo_dir / "manifest.csv")
    windows = []
    for path in manifest.path.iloc[::12]:
        samples = load_audio(demo_dir / path, SAMPLE_RATE).samples
        for start in (0, 10, 20):
            window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
            chunk = samples[start * SAMPLE_RATE : start * SAMPLE_RATE + WINDOW_SAMPLES]
            window[: len(chunk)] = chunk
            windows.append(window[None, :, None])
    return windows


class Windows(CalibrationDataReader):
    def __init__(self, windows: list[np.ndarray]) -> None:
        self._windows = iter(windows)

    def get_next(self) -> dict[str, np.ndarray] | None:
        window = next(self._windows, None)
        return None if window is None else {INPUT: window}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(FLOAT_MODEL), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        cqt = [node.name for node in graph.node if "cq_t" in node.name or "harmonic" in node.name]
        quantize_static(
            str(prepared),
            str(INT8_MODEL),
            Windows(calibration_windows()),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=cqt,
            calibrate_method=CalibrationMethod.MinMax,
        )
    print(f"{INT8_MODEL.relative_to(REPO)}: {INT8_MODEL.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
