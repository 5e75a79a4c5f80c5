"""W&B dashboards as code: ``python -m weakdeblur.dashboard --entity E --project P [--sweep-dir DIR]``.

Built with ``wandb-workspaces`` (W&B's library for workspaces and reports):

* the project's standard **workspace**: PSNR, SSIM and the losses against ``iteration``;
  a runs table grouped by experiment (W&B's ``group``) with the summary columns; the final
  x/k/x̄/k̄/y/ŷ/ground-truth images and the x/k snapshots; a parallel-coordinates panel over
  the swept config keys and a run comparer;
* with ``--sweep-dir`` (a finished multirun folder), a **report** of that sweep: the
  per-experiment and per-image tables of ``python -m weakdeblur.report`` (computed by the same
  code from the same local files), PSNR against iteration per experiment, where each image
  stopped, and the images of each run (the montage). Each experiment is one run set, holding
  the W&B runs whose ids its job folders record (``<job>/wandb/*run-<time>-<id>``).

Every key a panel names comes from the constants the tracker logs by
(:mod:`weakdeblur.runtime.tracking`); ``--dry-run`` prints the spec as JSON, with the keys it names,
and needs no network. Saving needs W&B online (an API key, ``WANDB_MODE`` not offline): when
it is not, or the server cannot be reached, one line says so and the exit status is 2;
nothing local is changed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from weakdeblur import report as local_report
from weakdeblur.runtime.tracking import (
    CURVE_LOSSES,
    CURVE_SCORES,
    FINAL_IMAGES,
    SNAPSHOT_IMAGES,
    STEP_METRIC,
    STOP_COLUMNS,
    SUMMARY_COLUMNS,
    final_image_key,
    wandb_mode,
)

WORKSPACE_NAME = "weakdeblur standard"
# config keys the sweeps of this project vary (README, docs/sweeps.md); a sweep folder's own
# varying overrides replace them when --sweep-dir is given
DEFAULT_SWEPT_KEYS = ("experiment", "seed", "optim.iterations", "data.crop")
# the report's montage: y, x̂, k̂, then the ground truth (weakdeblur.report.plot_montage)
MONTAGE_IMAGES = ("y", "x", "k", "x_true", "k_true")
RUN_FOLDER = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(?P<id>[a-z0-9]+)$")


CONF = Path(__file__).resolve().parents[1] / "conf"


def scalar_keys(keys: Sequence[str]) -> list[str]:
    """The keys that hold one value in the W&B config: not config groups (``supervisor=map``
    logs a whole dict; the preset and the tags name the choice)."""
    return [key for key in keys if "/" not in key and not (CONF / key).is_dir()]


class DashboardError(Exception):
    """A user-caused problem (offline, no results, unreachable server): one clear message."""


# ---------------------------------------------------------------- panels


def curve_panels() -> list[Any]:
    import wandb_workspaces.reports.v2 as wr

    return [
        *(wr.LinePlot(title=key.upper(), x=STEP_METRIC, y=[key]) for key in CURVE_SCORES),
        wr.LinePlot(title="losses", x=STEP_METRIC, y=list(CURVE_LOSSES), log_y=True),
    ]


def image_panels() -> list[Any]:
    import wandb_workspaces.reports.v2 as wr

    return [
        wr.MediaBrowser(
            title="final images",
            media_keys=[final_image_key(name) for name in FINAL_IMAGES],
            num_columns=4,
        ),
        wr.MediaBrowser(title="snapshots", media_keys=list(SNAPSHOT_IMAGES), gallery_axis="step"),
    ]


def comparison_panels(swept_keys: Sequence[str]) -> list[Any]:
    import wandb_workspaces.reports.v2 as wr

    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(key)) for key in swept_keys]
    columns += [
        wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(key)) for key in CURVE_SCORES
    ]
    return [
        wr.ParallelCoordinatesPlot(title="swept settings → scores", columns=columns),
        wr.RunComparer(diff_only="split"),
    ]


def summary_columns() -> list[str]:
    return [f"summary:{key}" for key in SUMMARY_COLUMNS]


def workspace(entity: str, project: str, swept_keys: Sequence[str]) -> Any:
    """The project's standard workspace (not saved)."""
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    return ws.Workspace(
        entity=entity,
        project=project,
        name=WORKSPACE_NAME,
        sections=[
            ws.Section(name="curves", panels=curve_panels(), is_open=True),
            ws.Section(name="images", panels=image_panels(), is_open=True),
            ws.Section(name="settings", panels=comparison_panels(swept_keys), is_open=True),
        ],
        settings=ws.WorkspaceSettings(x_axis=STEP_METRIC, max_runs=100),
        runset_settings=ws.RunsetSettings(
            groupby=[expr.Metric("Group")], pinned_columns=summary_columns()
        ),
    )


# ---------------------------------------------------------------- sweep report


def wandb_run_ids(folder: Path) -> list[str]:
    """Ids of the W&B runs a job folder recorded (``<folder>/wandb/*run-<time>-<id>``)."""
    found = {
        match["id"]
        for child in (folder / "wandb").glob("*run-*")
        if child.is_dir() and not child.is_symlink() and (match := RUN_FOLDER.match(child.name))
    }
    return sorted(found)


def _runset_filters(runs: Sequence[local_report.Run], varying: Sequence[str]) -> Any:
    """The W&B runs of one experiment (an ``expr.And``)."""
    from wandb_workspaces import expr

    ids = sorted({run_id for run in runs for run_id in wandb_run_ids(run.folder)})
    if ids:
        return expr.And(expr.Metric("ID").isin(ids))
    # no W&B folder (logged elsewhere, or cleaned): the experiment and its swept values
    first = runs[0]
    filters = [expr.Metric("Group") == first.experiment]
    for key in scalar_keys(varying):
        if key in first.overrides:
            filters.append(expr.Config(key) == yaml.safe_load(first.overrides[key]))
    return expr.And(*filters)


def sweep_report(entity: str, project: str, sweep_dir: Path) -> tuple[Any, list[str]]:
    """The report of a finished sweep and the sweep's varying override keys (not saved)."""
    import wandb_workspaces.reports.v2 as wr

    try:
        results = local_report.collect([sweep_dir])
    except local_report.ReportError as error:
        raise DashboardError(str(error)) from error
    runs = list({id(r.run): r.run for r in results}.values())
    varying = local_report.varying_overrides(runs)
    summary = local_report.summarise(results)
    images = local_report.per_image_rows(results)
    runsets = []
    for label in sorted({run.label for run in runs}):
        mine = [run for run in runs if run.label == label]
        runsets.append(
            wr.Runset(
                entity=entity,
                project=project,
                name=label,
                filters=_runset_filters(mine, varying),
                groupby=["group"],
                pinned_columns=summary_columns(),
            )
        )
    panels = [
        wr.LinePlot(
            title="PSNR (dB), aligned",
            x=STEP_METRIC,
            y=[CURVE_SCORES[0]],
            groupby_aggfunc="mean",
            groupby_rangefunc="minmax",
        ),
        wr.BarPlot(
            title="stop iteration / returned iteration",
            metrics=list(STOP_COLUMNS),
            groupby_aggfunc="mean",
            groupby_rangefunc="minmax",
        ),
        wr.MediaBrowser(
            title="y, x̂, k̂, ground truth",
            media_keys=[final_image_key(name) for name in MONTAGE_IMAGES],
            num_columns=len(MONTAGE_IMAGES),
        ),
    ]
    sources = ", ".join(f"`{local_report._display(run.folder)}`" for run in runs)
    blocks = [
        wr.P(
            "Mean ± sample standard deviation over the images that finished (status ok), "
            "as `python -m weakdeblur.report` computes it from the sweep's local files."
        ),
        wr.MarkdownBlock(text="\n".join(local_report.summary_table(summary))),
        wr.PanelGrid(runsets=runsets, panels=panels),
        wr.H2("Per image"),
        wr.MarkdownBlock(text="\n".join(local_report.per_image_table(images))),
        wr.P(f"Sources: {sources}"),
    ]
    title = f"weakdeblur sweep {sweep_dir.resolve().name}"[:128]
    report = wr.Report(entity=entity, project=project, title=title, blocks=blocks, width="fluid")
    return report, varying


# ---------------------------------------------------------------- spec


def named_keys(panels: Sequence[Any], columns: Sequence[str] = ()) -> dict[str, list[str]]:
    """The W&B keys the panels and table columns name: history (curves), summary, media, config."""
    import wandb_workspaces.reports.v2 as wr

    keys: dict[str, set[str]] = {
        "history": set(),
        "summary": set(),
        "media": set(),
        "config": set(),
    }
    for panel in panels:
        if isinstance(panel, wr.LinePlot):
            keys["history"] |= {panel.x, *panel.y}
        elif isinstance(panel, wr.BarPlot):
            keys["summary"] |= set(panel.metrics)
        elif isinstance(panel, wr.MediaBrowser):
            keys["media"] |= set(panel.media_keys)
        elif isinstance(panel, wr.ParallelCoordinatesPlot):
            for column in panel.columns:
                section = "config" if isinstance(column.metric, wr.Config) else "summary"
                keys[section].add(column.metric.name)
    for column in columns:
        section, _, name = column.partition(":")
        if section in ("summary", "config"):
            keys[section].add(name.removesuffix(".value"))
    return {section: sorted(names) for section, names in keys.items()}


def spec(space: Any, report: Any | None) -> dict[str, Any]:
    """What would be saved, as plain data: the specs wandb-workspaces sends, and the keys named."""
    space_panels = [panel for section in space.sections for panel in section.panels]
    out: dict[str, Any] = {
        "workspace": {
            "entity": space.entity,
            "project": space.project,
            "name": space.name,
            "keys": named_keys(space_panels, space.runset_settings.pinned_columns),
            "spec": space._to_model().model_dump(mode="json", by_alias=True, exclude_none=True),
        },
        "report": None,
    }
    if report is not None:
        grids = [block for block in report.blocks if hasattr(block, "runsets")]
        panels = [panel for grid in grids for panel in grid.panels]
        columns = [c for grid in grids for runset in grid.runsets for c in runset.pinned_columns]
        out["report"] = {
            "entity": report.entity,
            "project": report.project,
            "title": report.title,
            "runsets": [
                {"name": runset.name, "filters": runset.filters}
                for grid in grids
                for runset in grid.runsets
            ],
            "keys": named_keys(panels, columns),
            # a report's run sets look up the project's id on the server when serialised, so
            # offline the report is described field by field
            "blocks": [describe(block) for block in report.blocks],
        }
    return out


def describe(value: Any) -> Any:
    """A wandb-workspaces object as plain data: its public, non-empty fields, with its type."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            field.name: describe(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if not field.name.startswith("_")
        }
        kept = {k: v for k, v in fields.items() if v not in (None, "", [], {}, (None, None))}
        return {"type": type(value).__name__, **kept}
    if isinstance(value, (list, tuple)):
        return [describe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): describe(item) for key, item in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ---------------------------------------------------------------- saving


def require_online() -> None:
    mode = wandb_mode(None)
    if mode != "online":
        raise DashboardError(
            f"W&B is {mode} (WANDB_MODE={mode}, or no API key): nothing saved; log in with "
            "`wandb login` (or set WANDB_API_KEY), or print the spec with --dry-run"
        )


def save(space: Any, report: Any | None) -> list[str]:
    """Save the workspace, then the report; their URLs."""
    require_online()
    urls = []
    try:
        space.save()
        urls.append(f"workspace: {space.url}")
        if report is not None:
            report.save()
            urls.append(f"report: {report.url}")
    except Exception as error:  # requests/wandb raise many kinds; the server is the cause
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        done = f" ({'; '.join(urls)} saved)" if urls else ", nothing saved"
        raise DashboardError(f"cannot save to W&B: {reason}{done}") from error
    return urls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m weakdeblur.dashboard",
        description="Create the project's W&B workspace (and a sweep's report) with wandb-workspaces.",
    )
    parser.add_argument("--entity", required=True, help="W&B entity (user or team)")
    parser.add_argument("--project", required=True, help="W&B project (logger.project)")
    parser.add_argument(
        "--sweep-dir", type=Path, default=None, help="a finished multirun folder: also a report"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the spec as JSON; no network, nothing saved"
    )
    arguments = parser.parse_args(argv)
    try:
        report, swept = None, list(DEFAULT_SWEPT_KEYS)
        if arguments.sweep_dir is not None:
            report, varying = sweep_report(arguments.entity, arguments.project, arguments.sweep_dir)
            swept = ["experiment", *(key for key in scalar_keys(varying) if key != "experiment")]
        space = workspace(arguments.entity, arguments.project, swept)
        if arguments.dry_run:
            print(json.dumps(spec(space, report), indent=1, default=str))
            return 0
        for line in save(space, report):
            print(line)
    except DashboardError as error:
        print(f"weakdeblur.dashboard: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
