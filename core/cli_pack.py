"""The repertoire pack's build-time commands (need fluidsynth, SoundFonts, the MIDI files):
`composer-id build-pack`, `build-shifted`, `download-midi`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from core.cli_common import PROG, console, fail, line, load_settings


def register(app: typer.Typer) -> None:
    """Add the pack commands to the CLI."""
    app.command("build-pack")(build_pack)
    app.command("build-shifted")(build_shifted)
    app.command("download-midi")(download_midi)


def _pack_options(midi_dir: Path, work_dir: Path | None, chunks: int = 1):
    from core.datasets import pack

    settings = load_settings()
    return pack.BuildOptions(
        midi_dir=midi_dir,
        work_dir=work_dir or settings.home / "pack-work",
        config=settings.features,
        chunks=chunks,
    )


def build_pack(
    midi_dir: Annotated[Path, typer.Option(help="piano-midi folder: sources.csv + MIDI files.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Pack folder.")] = Path("data/pack"),
    work_dir: Annotated[
        Path | None, typer.Option(help="Resumable cache (default: HOME/pack-work).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=2, help="Processes (at most 2).")] = 2,
    chunks: Annotated[
        int,
        typer.Option(
            min=1, help="30 s chunks per piece and SoundFont (the shipped pack: 4; more: rerun)."
        ),
    ] = 4,
    only: Annotated[
        list[str] | None, typer.Option(help="Only these composers or piece ids (repeatable).")
    ] = None,
) -> None:
    """Render every piece with two SoundFonts (augmented), featurize, write the pack."""
    from core.datasets import pack
    from core.render import RenderError

    try:
        opts = _pack_options(midi_dir, work_dir, chunks)
        pieces = pack.select_pieces(pack.read_sources(midi_dir), only)
        console.print(f"{len(pieces)} pieces x {len(opts.variants)} SoundFonts -> {opts.work_dir}")
        command = " ".join([PROG, *sys.argv[1:]])
        manifest = pack.build(pieces, opts, out_dir, command, workers, line)
    except (pack.PackError, RenderError) as error:
        fail(error)
    console.print(
        f"pack: {manifest['rows']} rows, {manifest['pieces']} pieces, {manifest['composers']} "
        f"composers, {manifest['parquet_bytes'] / 1e6:.1f} MB -> [bold]{out_dir}[/] "
        f"(CPU-s: {manifest['build_cpu_s']})"
    )


def build_shifted(
    midi_dir: Annotated[Path, typer.Option(help="piano-midi folder: sources.csv + MIDI files.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("data/shifted"),
    demo_manifest: Annotated[
        Path | None, typer.Option(help="Default: the demo corpus's manifest.csv.")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Resumable cache (default: HOME/pack-work).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=2, help="Processes (at most 2).")] = 2,
) -> None:
    """The shifted bench set: every demo excerpt again, TimGM6mb and humanised."""
    from core.datasets import pack
    from core.render import RenderError

    try:
        opts = _pack_options(midi_dir, work_dir)
        excerpts = pack.read_demo_excerpts(
            demo_manifest or load_settings().demo_dir / "manifest.csv"
        )
        command = " ".join([PROG, *sys.argv[1:]])
        manifest = pack.build_shifted(excerpts, opts, out_dir, command, workers, line)
    except (pack.PackError, RenderError) as error:
        fail(error)
    console.print(
        f"shifted set: {manifest['rows']} rows, {manifest['recordings']} recordings -> "
        f"[bold]{out_dir}[/] (CPU-s: {manifest['cpu_s']})"
    )


def download_midi(
    dest: Annotated[Path, typer.Option(help="Folder to fill with <Composer>/<name>.mid.")],
    base_url: Annotated[
        str | None, typer.Option(help="Default: setting midi_base_url; fetches {URL}/{file}.")
    ] = None,
    pieces_csv: Annotated[
        Path | None, typer.Option(help="Default: the shipped pack's pieces.csv.")
    ] = None,
) -> None:
    """Fetch the pack's MIDI files (resumable, size- and sha256-checked) + sources.csv."""
    from core.datasets import pack
    from core.download import DownloadError

    settings = load_settings()
    try:
        pieces = pack.read_pieces(pieces_csv or settings.pack_dir / "pieces.csv")
        paths = pack.download_midi(pieces, base_url or settings.midi_base_url, dest, progress=True)
    except (DownloadError, pack.PackError, OSError) as error:
        fail(error)
    console.print(f"{len(paths)} MIDI files ready in [bold]{dest}[/]")
