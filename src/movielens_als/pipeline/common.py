"""What every stage does around its work: validate, open the MLflow run, resolve the model it
trains, and publish its metrics, curve, figures and artifacts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf, open_dict

from movielens_als.atomic import atomic_paths, dump_json, write_json
from movielens_als.config.validate import validate
from movielens_als.errors import ConfigError
from movielens_als.pipeline.layout import Layout
from movielens_als.progress import Progress
from movielens_als.tracking.context import dvc_out_hash, git_commit
from movielens_als.tracking.mlflow_tracker import NullTracker, flatten_config, open_tracker

log = logging.getLogger(__name__)


def stage_view(cfg: DictConfig, stage: str) -> DictConfig:
    """The config as the stage reads it, with its own sections at the top level.

    ``conf/<stage>.yaml`` (plain runs, multirun) puts them there already; ``params.yaml``,
    which DVC runs the stages with, nests each stage's sections under ``<stage>.*`` (e.g.
    ``als.model``), so they are lifted to ``model`` and so on.
    """
    if stage not in cfg or not isinstance(cfg[stage], DictConfig):
        return cfg
    view = cfg.copy()
    with open_dict(view):
        for key, value in cfg[stage].items():
            if key not in view:
                view[key] = value
    return view


def stage_compute(cfg: DictConfig):
    """The compute the stage's fits run on (``compute`` config group; local when absent)."""
    from movielens_als.compute import open_compute

    compute = cfg.get("compute")
    return open_compute(None if compute is None else OmegaConf.to_container(compute, resolve=True))


def with_model(cfg: DictConfig, key: str = "model") -> DictConfig:
    """The config with ``model`` as the full model section.

    Stage configs (``conf/<stage>.yaml``) compose the ``model`` group there already; in
    ``params.yaml`` every shipped model lives under ``models.<name>`` and the stage names one
    (``train.model``, ``sweep.model``, ``kgrid.model``, lifted to ``cfg[key]``).
    """
    chosen = cfg.get(key)
    if isinstance(chosen, DictConfig):
        return cfg
    models = cfg.get("models") or {}
    if chosen is None or chosen not in models:
        known = ", ".join(models) or "none"
        raise ConfigError(
            f"{key}: name the model to use, one of the configured models ({known}); got {chosen!r}"
        )
    if models[chosen].get("name") != chosen:
        raise ConfigError(
            f"models.{chosen}.name: must equal its key {chosen!r} (it names the outputs)"
        )
    view = cfg.copy()
    with open_dict(view):
        view.model = models[chosen]
    return view


@contextlib.contextmanager
def stage_run(
    cfg: DictConfig,
    stage: str,
    sections: Iterable[str],
    output: str | None = None,
    run_name: str | None = None,
) -> Iterator[NullTracker]:
    """Validate ``cfg`` for ``stage`` and open its MLflow run, logging the config sections it
    reads. The run is tagged ``stage=<output>`` (what it writes, default the stage: ``als``,
    ``als_tuned``, ``sweep``) and named ``run_name`` (default the output) in the UI."""
    validate(cfg, stage)
    layout = Layout.from_config(cfg)
    params = flatten_config({key: cfg[key] for key in sections if key in cfg})
    output = output or stage
    tags = {
        "stage": output,
        "dataset": str(cfg.dataset.name),
        "git_commit": git_commit(),
    }
    if stage not in ("download", "index", "split"):  # the split this run reads
        tags["split_dvc_hash"] = dvc_out_hash(layout.split_dir)
    with open_tracker(cfg, run_name or output, params, tags) as tracker:
        yield tracker


# PDFs carry their creation date unless told not to; a rerun must give the same bytes.
_PDF_METADATA = {"CreationDate": None}


def figure_files(figures: Mapping[str, Figure]) -> list[str]:
    """The files written for ``figures``: each as PDF (for papers) and PNG (for the MLflow UI and
    the README, which render PNGs inline)."""
    return [f for name in figures for f in (name, str(Path(name).with_suffix(".png")))]


def _write_figures(figures: Mapping[str, Figure], folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, figure in figures.items():
        figure.savefig(folder / name, format="pdf", bbox_inches="tight", metadata=_PDF_METADATA)
        png = Path(name).with_suffix(".png")
        figure.savefig(folder / png, format="png", bbox_inches="tight", dpi=120)


def check_metrics(metrics: Mapping[str, Any], where: Path) -> None:
    """Metrics files hold numbers only (DVC compares them; names and lists go to details)."""
    for key, value in metrics.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{where}: metric {key!r} is {value!r}, not a number")


def publish(
    tracker: NullTracker,
    layout: Layout,
    name: str,
    metrics: Mapping[str, float] | None = None,
    *,
    metric_rows: Mapping[str, Mapping[str, float]] | None = None,
    details: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
    figures: Mapping[str, Figure] | None = None,
    curve: Any = None,
    writers: Mapping[Path, Callable[[Path], None]] | None = None,
    artifacts: Iterable[Path] = (),
    logged: Mapping[str, float] | None = None,
    written: Iterable[Path] = (),
) -> None:
    """Publish stage output ``name`` together. What DVC tracks — the metrics (``metrics`` as
    ``metrics/<name>.json``, or a table ``metric_rows`` as ``metrics/<name>/<row>.json``), the
    ``details`` JSON, the curve CSV, the figures and every ``writers`` entry (target path →
    function writing it at a given path, e.g. the model folder) — is written under temporary
    names first, then all renamed into place, so a killed or failing run leaves the previous
    generation whole. ``timings`` (seconds; different on every run, so never a DVC output) go
    to ``timings/<name>.json`` and MLflow. Then the MLflow run gets the metrics (``logged``,
    default the metrics themselves) and every file as an artifact. ``layout`` is where the run
    writes (``Layout.outputs``). Last, the stage's summary line is logged: the metrics, the
    metrics file, what the stage wrote itself before (``written``: the index, the split) and
    the ``writers``' targets."""
    outputs: dict[Path, Callable[[Path], None]] = dict(writers or {})
    files: list[Path] = []
    if curve is not None:
        outputs[layout.curve_file(name)] = lambda tmp: curve.to_csv(tmp, index=False)
        files.append(layout.curve_file(name))
    if figures:
        outputs[layout.figures_dir(name)] = lambda tmp: _write_figures(figures, tmp)
        files += [layout.figures_dir(name) / f for f in figure_files(figures)]
    if details is not None:
        outputs[layout.details_file(name)] = lambda tmp: dump_json(
            tmp, details, name=layout.details_file(name)
        )
        files.append(layout.details_file(name))
    if metric_rows is not None:
        folder = layout.metrics_dir(name)
        for row, values in metric_rows.items():
            check_metrics(values, folder / f"{row}.json")

        def write_rows(tmp: Path) -> None:
            tmp.mkdir(parents=True)
            for row, values in metric_rows.items():
                dump_json(tmp / f"{row}.json", values, name=folder / f"{row}.json")

        outputs[folder] = write_rows
        files += [folder / f"{row}.json" for row in metric_rows]
        default_logged = {
            f"{row}.{key}": value
            for row, values in metric_rows.items()
            for key, value in values.items()
        }
    else:
        metrics = dict(metrics or {})
        check_metrics(metrics, layout.metrics_file(name))
        outputs[layout.metrics_file(name)] = lambda tmp: dump_json(
            tmp, metrics, name=layout.metrics_file(name)
        )
        files.insert(0, layout.metrics_file(name))
        default_logged = metrics
    with atomic_paths(*outputs) as temporaries:
        for tmp, write in zip(temporaries, outputs.values(), strict=True):
            write(tmp)
    if timings:
        write_json(layout.timings_file(name), dict(timings))
        files.append(layout.timings_file(name))
    tracker.log_metrics({**(default_logged if logged is None else logged), **(timings or {})})
    tracker.log_artifacts(files, root=layout.reports)
    tracker.log_artifacts(artifacts)
    wrote = [*written, *(writers or {})]
    if metric_rows is not None:  # a table: its first metric, one number per row
        rows = list(metric_rows.values())
        first = next(iter(rows[0]), "") if rows else ""
        headline = {row: values[first] for row, values in metric_rows.items()}
        log_summary(f"{name} {first}", headline, [layout.metrics_dir(name), *wrote])
    else:
        log_summary(name, metrics, [layout.metrics_file(name), *wrote])


def log_summary(name: str, numbers: Mapping[str, Any], wrote: Iterable[Path]) -> None:
    """The line a stage ends with: what it made, its headline numbers and where it wrote them,
    e.g. ``als: test_rmse=0.8384 train_rmse=0.6012 → reports/metrics/als.json, data/models/…``."""
    text = "  ".join(f"{key}={_number(value)}" for key, value in numbers.items())
    log.info("%s: %s → %s", name, text, ", ".join(_shown(path) for path in wrote))


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory (the project folder) when it is below it."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return path.absolute().relative_to(Path.cwd()).as_posix()
    return path.as_posix()


def iteration_text(record) -> str:
    """One iteration of ``fit`` as a progress line shows it (an ``IterationRecord``)."""
    rmse = {"train": record.train_rmse, **record.eval_rmse}
    scores = "  ".join(f"{key}_rmse={value:.4f}" for key, value in rmse.items())
    return f"nll={record.nll:.6g}  {scores}  {record.seconds:.2f} s"


@contextlib.contextmanager
def fit_progress(params, then: Callable[[Any], None] | None = None) -> Iterator[Callable]:
    """A ``fit`` callback that shows each iteration of the model ``params`` fits (a line per
    iteration, under a bar on a terminal), then hands the record on to ``then``."""
    from movielens_als.core.variant import variant_of

    with Progress(variant_of(params).step_label, params.n_iterations) as progress:

        def callback(record) -> None:
            progress.update(record.iteration, iteration_text(record))
            if then is not None:
                then(record)

        yield callback


def numeric_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The top-level numbers of a dict (what a metrics file or an MLflow metric can hold)."""
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def pick(values: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The headline metrics of a stage's summary (the whole summary goes to its details)."""
    return {key: values[key] for key in keys}


def split_as_configured(
    data, cfg: DictConfig, *, val_fraction: float | None = None, fold: int | str | None = None
):
    """``split_ratings`` as the ``split`` section says; stages that tune pass their own
    validation fraction (train ∪ validation is then still exactly the configured train), and
    the cross-validation stage the fold (a kfold index or a predefined split's name)."""
    from movielens_als.data.split import split_ratings

    split_cfg = cfg.split
    method = split_cfg.method
    predefined = None
    if method == "predefined":
        from movielens_als.data.parse import read_predefined_split
        from movielens_als.data.registry import get_release

        name = split_cfg.predefined if fold is None else fold
        predefined = read_predefined_split(
            get_release(cfg.dataset.name), Layout.from_config(cfg).raw_dir, str(name)
        )
    return split_ratings(
        data,
        method=method,
        train_fraction=split_cfg.train_fraction,
        val_fraction=split_cfg.val_fraction if val_fraction is None else val_fraction,
        seed=split_cfg.seed,
        n_test_per_user=split_cfg.n_test_per_user,
        folds=split_cfg.get("folds", 5),
        fold=split_cfg.get("fold", 0) if fold is None or method != "kfold" else fold,
        predefined=predefined,
    )
