"""The monitoring reports page: every monitored window with its headline figures, a trend plot
over the days, and the full Evidently reports.

Reads the ``monitoring_summaries`` table of the prediction store (``COMPOSER_DATABASE_URL``)
and serves the files under ``HOME/reports`` (what ``core.monitor.run_monitoring`` writes).

Routes: ``/`` (the page), ``/trend.png`` (matplotlib), ``/reports/<window>/<file>`` (drift.html,
drift.json, quality.html, quality.json, summary.json), ``/api/summaries`` (JSON), ``/health``.
"""

from __future__ import annotations

import argparse
import html
import io
import math
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pandas as pd
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from core.config import Settings
from core.monitor import NOT_ENOUGH, RETRAIN, reports_dir, window_folder
from core.store import open_store

TOP_COMPOSERS = 6
DECISION_COLOURS = {RETRAIN: "#c0392b", "no action": "#27ae60", NOT_ENOUGH: "#7f8c8d"}


def create_app(settings: Settings) -> FastAPI:
    store = open_store(settings)
    base = reports_dir(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        store.close()

    app = FastAPI(
        title="composer-id monitoring reports",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return render_page(store.summaries(), base, settings)

    @app.get("/trend.png")
    def trend() -> Response:
        png = trend_png(store.summaries(), settings)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/summaries")
    def summaries() -> JSONResponse:
        frame = store.summaries()
        records = [{k: _jsonable(v) for k, v in row.items()} for row in frame.to_dict("records")]
        return JSONResponse(records)

    @app.get("/reports/{path:path}")
    def report(path: str) -> FileResponse:
        root = base.resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise HTTPException(status_code=404, detail="no such report")
        return FileResponse(target)

    @app.get("/health")
    def health() -> JSONResponse:
        """The store's typed health; 503 when the database is unreachable (this page only
        reads from it; the spool belongs to the app)."""
        state = store.health()
        return JSONResponse(state.as_dict(), status_code=200 if state.database else 503)

    return app


# --------------------------------------------------------------------------- the page


def render_page(frame: pd.DataFrame, base: Path, settings: Settings) -> str:
    rows = "\n".join(_row(row, base) for row in reversed(frame.to_dict("records")))
    if not rows:
        rows = (
            '<tr><td colspan="9" class="empty">No monitoring window yet: run '
            "<code>composer-id monitor</code> or the <code>monitor</code> DAG.</td></tr>"
        )
    thresholds = (
        f"Retrain when drift share &ge; {settings.monitor_drift_share:.0%}, when the "
        f"predicted-composer mix drifts, or when accuracy on at least "
        f"{settings.monitor_min_feedback} feedback rows is below "
        f"{settings.monitor_min_accuracy:.0%}; fewer than {settings.monitor_min_rows} "
        "predictions in a window: not enough data"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Monitoring reports - composer-id</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
h1 {{ font-size: 1.4rem; margin-bottom: .2rem; }}
p.note {{ color: #555; margin-top: 0; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: left;
  vertical-align: top; }}
th {{ background: #f4f6f8; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.badge {{ color: #fff; border-radius: .3rem; padding: .1rem .4rem; white-space: nowrap; }}
td.reason {{ max-width: 38rem; }}
td.empty {{ color: #777; text-align: center; padding: 1rem; }}
td.window {{ white-space: nowrap; }}
img.trend {{ max-width: 100%; border: 1px solid #eee; margin: .5rem 0 1rem; }}
</style></head>
<body>
<h1>Monitoring reports</h1>
<p class="note">Model <b>{html.escape(settings.model_name)}</b>: each window's predictions
compared with the champion's training corpus (Evidently). {thresholds}.</p>
<img class="trend" src="trend.png" alt="Trend: drift share, prediction mix and accuracy on
feedback per window">
<table id="windows">
<thead><tr><th>window</th><th>model</th><th>rows</th><th>drift share (columns)</th>
<th>prediction drift</th><th>accuracy on feedback</th><th>decision</th><th>reason</th>
<th>reports</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""


def _row(row: dict, base: Path) -> str:
    start, end = _to_datetime(row["window_start"]), _to_datetime(row["window_end"])
    folder = window_folder(start, end)
    share = row["drift_share"]
    share_text = "&ndash;"
    if share is not None:
        share_text = f"{share:.1%} ({row['drifted_columns']}/{row['n_columns']})"
    drift = row["prediction_drift"]
    drift_text = "&ndash;" if drift is None else ("yes" if drift else "no")
    if drift is not None and row["prediction_drift_score"] is not None:
        drift_text += f" <small>(p/score {row['prediction_drift_score']:.3g})</small>"
    accuracy = row["feedback_accuracy"]
    accuracy_text = "&ndash;" if accuracy is None else f"{accuracy:.0%}"
    accuracy_text += f" <small>({row['feedback_rows']} rows)</small>"
    colour = DECISION_COLOURS.get(row["decision"], "#555")
    links = []
    if row["report_html"]:
        links.append(_link(row["report_html"], "drift report", base))
    for name, label in (("quality.html", "quality"), ("summary.json", "summary.json")):
        if (base / folder / name).is_file():
            links.append(_link(f"{folder}/{name}", label, base))
    return (
        f'<tr data-window="{html.escape(folder)}">'
        f'<td class="window">{html.escape(folder)}</td>'
        f"<td>{html.escape(str(row['model_version'] or '-'))}</td>"
        f'<td class="num">{row["rows"]}</td>'
        f'<td class="num">{share_text}</td>'
        f"<td>{drift_text}</td>"
        f"<td>{accuracy_text}</td>"
        f'<td><span class="badge" style="background:{colour}">'
        f"{html.escape(row['decision'])}</span></td>"
        f'<td class="reason">{html.escape(row["reason"] or "")}</td>'
        f"<td>{' &middot; '.join(links) or '&ndash;'}</td></tr>"
    )


def _link(relative: str, label: str, base: Path) -> str:
    exists = (base / relative).is_file()
    href = "reports/" + "/".join(html.escape(part) for part in Path(relative).parts)
    if not exists:
        return f'<span title="file missing">{html.escape(label)} (missing)</span>'
    return f'<a href="{href}" target="_blank">{html.escape(label)}</a>'


# --------------------------------------------------------------------------- the trend plot


def trend_png(frame: pd.DataFrame, settings: Settings) -> bytes:
    """Three panels over the windows: drift share, predicted-composer mix, accuracy on
    feedback (with the thresholds); windows without a verdict are greyed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True, constrained_layout=True)
    if frame.empty:
        for ax in axes:
            ax.set_axis_off()
        axes[1].text(0.5, 0.5, "No monitoring window yet", ha="center", va="center", fontsize=14)
        return _png(fig, plt)
    labels = [
        window_folder(_to_datetime(s), _to_datetime(e))[:10]
        for s, e in zip(frame["window_start"], frame["window_end"], strict=True)
    ]
    x = list(range(len(frame)))
    colours = [DECISION_COLOURS.get(d, "#555") for d in frame["decision"]]

    share = [_nan(v) for v in frame["drift_share"]]
    axes[0].plot(x, share, color="#34495e", linewidth=1, zorder=1)
    axes[0].scatter(x, [0 if math.isnan(v) else v for v in share], c=colours, zorder=2)
    axes[0].axhline(settings.monitor_drift_share, color="#c0392b", linestyle="--", linewidth=1)
    axes[0].set_ylim(0, 1.02)
    axes[0].set_ylabel("drift share")
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=colour, label=decision)
        for decision, colour in DECISION_COLOURS.items()
    ]
    handles.append(plt.Line2D([], [], color="#c0392b", linestyle="--", label="threshold"))
    axes[0].legend(
        handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False
    )
    axes[0].set_title("Share of drifted feature columns (dot colour = decision)", fontsize=10)

    mixes = pd.DataFrame([row or {} for row in frame["prediction_mix"]]).fillna(0.0)
    if not mixes.empty:
        top = mixes.sum().sort_values(ascending=False).index[:TOP_COMPOSERS]
        shown = mixes[top].copy()
        others = mixes.drop(columns=top).sum(axis=1)
        if (others > 0).any():
            shown["others"] = others
        bottom = [0.0] * len(x)
        cmap = plt.get_cmap("tab10")
        for i, composer in enumerate(shown.columns):
            values = shown[composer].tolist()
            colour = "#bdc3c7" if composer == "others" else cmap(i)
            axes[1].bar(x, values, bottom=bottom, color=colour, label=composer, width=0.7)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        axes[1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    axes[1].set_ylim(0, 1.02)
    axes[1].set_ylabel("share of predictions")
    axes[1].set_title("Predicted-composer mix", fontsize=10)

    accuracy = [_nan(v) for v in frame["feedback_accuracy"]]
    axes[2].plot(x, accuracy, marker="o", color="#2980b9")
    axes[2].axhline(settings.monitor_min_accuracy, color="#c0392b", linestyle="--", linewidth=1)
    axes[2].set_ylim(0, 1.02)
    axes[2].set_ylabel("accuracy")
    axes[2].set_title("Accuracy on feedback (user-confirmed composers)", fontsize=10)
    axes[2].set_xticks(x, labels, rotation=45 if len(x) > 8 else 0, ha="right")
    return _png(fig, plt)


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _to_datetime(value) -> datetime:
    return value if isinstance(value, datetime) else pd.Timestamp(value).to_pydatetime()


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m reports_app",
        description="Serve the monitoring reports page (windows, trend plot, Evidently reports).",
        epilog="Reads COMPOSER_* settings: COMPOSER_HOME (reports under HOME/reports), "
        "COMPOSER_DATABASE_URL (the monitoring_summaries table), COMPOSER_REPORTS_HOST/PORT.",
    )
    parser.add_argument("--host", help="Bind address (default COMPOSER_REPORTS_HOST, 127.0.0.1).")
    parser.add_argument("--port", type=int, help="Port (default COMPOSER_REPORTS_PORT, 8090).")
    args = parser.parse_args(argv)
    overrides = {"reports_host": args.host, "reports_port": args.port}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    import uvicorn

    print(
        f"Monitoring reports on http://{settings.reports_host}:{settings.reports_port}/",
        flush=True,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.reports_host,
        port=settings.reports_port,
        log_level="warning",
    )
