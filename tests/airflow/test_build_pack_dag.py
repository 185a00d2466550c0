"""The build_pack DAG parses with its params and runs end to end (``dag.test()``) on a
two-piece MIDI fixture rendered with TimGM6mb, producing a pack ``load_pack`` accepts."""

from __future__ import annotations

import csv
import json
import subprocess

import pytest

from core.config import REPO_ROOT, FeatureConfig
from core.datasets import pack
from tests.airflow.conftest import PYTHON, AirflowRunner, airflow_env
from tests.conftest import require_system
from tests.data.test_pack import write_piece

pytestmark = pytest.mark.integration

PARSE = r"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=DAGS)
dag = bag.dags.get("build_pack")
out = {"errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}}
if dag is not None:
    out.update(
        tags=sorted(dag.tags), doc=bool(dag.doc_md), params=sorted(dag.params.keys()),
        owners=sorted({t.owner for t in dag.tasks}), tasks=sorted(t.task_id for t in dag.tasks),
    )
print("RESULT " + json.dumps(out))
"""


def test_build_pack_dag_parses_with_params(tmp_path):
    env = airflow_env(tmp_path, {})
    code = PARSE.replace("DAGS", repr(str(REPO_ROOT / "dags")))
    done = subprocess.run(
        [PYTHON, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, done.stderr[-3000:]
    info = json.loads(line[-1].removeprefix("RESULT "))
    assert info["errors"] == {}
    assert info["tasks"] == ["assemble", "build_piece", "plan"]
    assert {"midi_dir", "out", "work_dir", "chunks", "soundfonts"} <= set(info["params"])
    assert "composer" in info["tags"] and info["doc"]
    assert info["owners"] == ["ml-platform"]


def test_build_pack_dag_builds_a_two_piece_pack(tmp_path):
    require_system("fluidsynth", "soundfont")
    midi = tmp_path / "midi"
    midi.mkdir()
    with (midi / "sources.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "composer", "title", "year", "duration_s", "bytes"])
        for file, composer, notes in (
            ("Alpha/a_1.mid", "Alpha", [60, 64, 67]),
            ("Beta/b_1.mid", "Beta", [50, 57, 62, 65]),
        ):
            size = write_piece(midi / file, notes, 11.0)
            w.writerow([file, composer, f"{composer}_Piece", 1800, 11.0, size])
    env = airflow_env(tmp_path / "airflow", {"COMPOSER_HOME": str(tmp_path / "home")})
    runner = AirflowRunner(env)
    runner.migrate()
    out = tmp_path / "pack"
    conf = {"midi_dir": str(midi), "out": str(out), "soundfonts": "timgm6mb", "chunks": 1}
    result = runner.run("build_pack", conf)
    assert result["state"] == "success", result
    assert result["tasks"]["build_piece[0]"] == result["tasks"]["build_piece[1]"] == "success"
    table = pack.load_pack(out, FeatureConfig())
    assert set(table["piece"]) == {"Alpha/a_1", "Beta/b_1"}
    assert set(table["source"]) == {"timgm6mb"}
