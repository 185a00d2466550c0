"""Build the repertoire pack: MIDI folder -> one mapped task per piece -> data/pack."""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from core.config import Settings
from core.datasets import pack
from core.orchestration import DEFAULT_ARGS

DOC = """
### Build the repertoire pack
Renders every piece of a piano-midi.de MIDI folder (`sources.csv` + `<Composer>/*.mid`) with
each SoundFont, humanised and augmented, featurizes 30 s chunks with the serving featurizer
and writes the pack (`features.parquet`, `manifest.json`, `pieces.csv`) to `out`.

* One **mapped task per piece**; every (piece, SoundFont, chunk) is cached in `work_dir`
  (default `COMPOSER_HOME/pack-work`), so retries and re-runs only compute what is missing.
* Needs fluidsynth and the SoundFonts (build time only); the CLI twin is
  `composer-id build-pack --midi-dir PATH --out data/pack`.
"""


def _options(params: dict) -> pack.BuildOptions:
    settings = Settings()
    fonts = [f.strip() for f in params["soundfonts"].split(",") if f.strip()]
    work = params["work_dir"] or settings.home / "pack-work"
    return pack.options(params["midi_dir"], work, settings.features, params["chunks"], fonts)


@dag(
    dag_id="build_pack",
    schedule=None,
    catchup=False,
    tags=["composer", "data"],
    default_args=DEFAULT_ARGS,
    doc_md=DOC,
    params={
        "midi_dir": Param(type="string", minLength=1, description="piano-midi folder."),
        "out": Param("data/pack", type="string", minLength=1, description="Pack folder."),
        "work_dir": Param("", type="string", description="Cache ('' = HOME/pack-work)."),
        "chunks": Param(
            4, type="integer", minimum=1, maximum=20, description="Per SoundFont (shipped: 4)."
        ),
        "soundfonts": Param("musescore,fluidr3", type="string", description="Comma-separated."),
    },
)
def build_pack():
    @task
    def plan(params: dict) -> list[str]:
        return [p.piece for p in pack.read_sources(params["midi_dir"])]

    @task(max_active_tis_per_dagrun=2)
    def build_piece(piece: str) -> dict:
        return pack.build_piece(piece, _options(get_current_context()["params"]))

    @task
    def assemble(done: list[dict], params: dict) -> dict:
        opts = _options(params)
        pieces = pack.read_sources(opts.midi_dir)
        manifest = pack.assemble(pieces, opts, params["out"], f"airflow dag build_pack {params}")
        return {k: manifest[k] for k in ("rows", "pieces", "composers", "parquet_sha256")}

    assemble(build_piece.expand(piece=plan()))


build_pack()
