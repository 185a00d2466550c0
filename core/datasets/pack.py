"""The repertoire pack: every piano-midi.de piece rendered, augmented and featurized.

Build (development time, needs fluidsynth + SoundFonts + the MIDI folder) in two resumable
stages, one cache file per (piece, variant) in a work directory, each written atomically:

1. render: humanise the MIDI, render the whole piece with the variant's SoundFont, augment
   the audio (``core.render``) -> ``audio/<piece>__<variant>.flac`` + a JSON sidecar;
2. featurize: ``core.featurize.featurize_audio`` (the one featurizer of training and serving)
   on the rendered audio -> ``rows/<fingerprint>/<piece>__<variant>.parquet``.

``assemble`` concatenates the rows into ``<out>/features.parquet`` (zstd, float32) with
``manifest.json`` (schema, config, seeds, counts, sha256), ``pieces.csv``, README and LICENSE.
Training calls ``load_pack``, which refuses a pack of another feature schema or config.

Nothing here is needed at run time except ``load_pack``; imports of the build side are lazy.

The parts, one job each: ``pack_pieces`` (pieces, variants, options, the MIDI download),
``pack_jobs`` (render or featurize one chunk), ``pack_build`` (the build loop and assembly),
``pack_load`` (loading for training) and ``shifted`` (the shifted bench set). This module
keeps ``from core.datasets import pack; pack.NAME`` working for all of them.
"""

from __future__ import annotations

from core.datasets.pack_build import (
    STAGES,
    StageReport,
    assemble,
    build,
    build_piece,
    run_stage,
    write_table,
)
from core.datasets.pack_jobs import (
    audio_path,
    chunk_plan,
    featurize_piece,
    jobs_of,
    labelled_rows,
    midi_seconds,
    performed_seconds,
    render_piece,
    rows_path,
    trim_tail,
)
from core.datasets.pack_load import (
    REBUILD_HINT,
    load_pack,
    read_manifest,
)
from core.datasets.pack_pieces import (
    ATTRIBUTION,
    CHUNK_SECONDS,
    DEFAULT_BASE_SEED,
    DEFAULT_VARIANTS,
    LICENCE,
    META_COLUMNS,
    PACK_FORMAT,
    PIECES_COLUMNS,
    PREROLL_SECONDS,
    SOURCES_COLUMNS,
    BuildOptions,
    PackError,
    Piece,
    Variant,
    download_midi,
    options,
    read_pieces,
    read_sources,
    select_pieces,
    sha256,
    write_pieces,
)
from core.datasets.shifted import (
    FADE_SECONDS,
    SHIFTED_COLUMNS,
    SHIFTED_SOUNDFONT,
    Excerpt,
    build_shifted,
    featurize_excerpt,
    load_shifted,
    read_demo_excerpts,
    render_excerpt,
    shifted_audio_path,
)

__all__ = [
    "ATTRIBUTION",
    "CHUNK_SECONDS",
    "DEFAULT_BASE_SEED",
    "DEFAULT_VARIANTS",
    "FADE_SECONDS",
    "LICENCE",
    "META_COLUMNS",
    "PACK_FORMAT",
    "PIECES_COLUMNS",
    "PREROLL_SECONDS",
    "REBUILD_HINT",
    "SHIFTED_COLUMNS",
    "SHIFTED_SOUNDFONT",
    "SOURCES_COLUMNS",
    "STAGES",
    "BuildOptions",
    "Excerpt",
    "PackError",
    "Piece",
    "StageReport",
    "Variant",
    "assemble",
    "audio_path",
    "build",
    "build_piece",
    "build_shifted",
    "chunk_plan",
    "download_midi",
    "featurize_excerpt",
    "featurize_piece",
    "jobs_of",
    "labelled_rows",
    "load_pack",
    "load_shifted",
    "midi_seconds",
    "options",
    "performed_seconds",
    "read_demo_excerpts",
    "read_manifest",
    "read_pieces",
    "read_sources",
    "render_excerpt",
    "render_piece",
    "rows_path",
    "run_stage",
    "select_pieces",
    "sha256",
    "shifted_audio_path",
    "trim_tail",
    "write_pieces",
    "write_table",
]
