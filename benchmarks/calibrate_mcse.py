"""Choose ``model.mcse_tolerance`` (the Gibbs chain-length rule) on a validation carve-out of
train, never on test.

    .venv/bin/python benchmarks/calibrate_mcse.py                          # ML-32M shape
    .venv/bin/python benchmarks/calibrate_mcse.py --dataset ml-latest-small
    .venv/bin/python benchmarks/calibrate_mcse.py --model bayes_genre_als --out -

Fits the shipped Gibbs config (``conf/model/<model>.yaml``, all ``samples``, the rule off) on
train minus the validation carve-out (``--val-fraction`` of train, the split's rule, as the
``validation_fit`` stage carves it) and records, per sample, the batch-means MCSE the rule reads
(training pairs only) and the validation RMSE of the running posterior mean. For each candidate
tolerance it prints the sample the rule would stop at, the validation RMSE there and its excess
over the full chain's, and the share of samples saved; the suggested tolerance is the largest
whose excess is at most ``--max-excess`` stars. The table (with the machine's facts) goes to
``benchmarks/results/mcse_<dataset>_<model>.md`` unless ``--out -``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

from bench_bayes import machine_facts
from movielens_als.config import compose
from movielens_als.core import fit, model_params

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = (0.05, 0.04, 0.03, 0.025, 0.02, 0.0175, 0.015, 0.0125, 0.01, 0.0075, 0.005)


def carveout(overrides: list[str], val_fraction: float):
    """Index the configured dataset (generated, for ``synthetic``) and carve validation out of
    train with the split's own rule."""
    from movielens_als.data.download import fetch_release
    from movielens_als.data.index import build_index
    from movielens_als.data.parse import read_movies, read_ratings
    from movielens_als.data.registry import get_release
    from movielens_als.data.synthetic import SyntheticSpec, write_release
    from movielens_als.pipeline.common import split_as_configured

    cfg = compose("train", overrides)
    release = get_release(cfg.dataset.name)
    with tempfile.TemporaryDirectory() as raw:
        if release.fmt == "synthetic":
            spec = SyntheticSpec.preset(
                cfg.dataset.synthetic.preset, seed=cfg.dataset.synthetic.seed
            )
            folder = write_release(spec, raw)
        else:
            folder = fetch_release(release.name, raw, mirror=cfg.dataset.get("mirror"))
        data, _ = build_index(read_ratings(release, folder), read_movies(release, folder), release)
    split, _ = split_as_configured(data, cfg, val_fraction=val_fraction)
    return cfg, data, split


def stop_at(history, tolerance: float) -> int:
    """The sample the rule stops at (the last one when it never gets within tolerance)."""
    for record in history:
        if record.extra.get("mcse", math.inf) <= tolerance:
            return record.iteration
    return history[-1].iteration


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic", help="dataset config (conf/dataset/)")
    parser.add_argument("--preset", default="ml-32m", help="synthetic preset (synthetic only)")
    parser.add_argument("--model", default="bayes_als", help="a Gibbs model config")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--max-excess", type=float, default=0.001, help="stars of val RMSE")
    parser.add_argument("--out", default=None, help="table file, or - for stdout only")
    args = parser.parse_args()

    overrides = [f"dataset={args.dataset}", f"model={args.model}", "model.mcse_tolerance=0"]
    if args.dataset == "synthetic":
        overrides.append(f"dataset.synthetic.preset={args.preset}")
    started = time.perf_counter()
    cfg, data, split = carveout(overrides, args.val_fraction)
    print(
        f"data: {split.train.nnz:,} train, {split.val.nnz:,} validation ratings "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    params = model_params(cfg.model)

    def progress(record) -> None:
        if record.iteration % 25 == 0 or record.iteration == params.samples:
            mcse = record.extra.get("mcse", math.nan)
            print(
                f"sample {record.iteration}/{params.samples}: val RMSE "
                f"{record.eval_rmse['val']:.4f}, mcse {mcse:.4f}, {record.seconds:.2f} s",
                flush=True,
            )

    started = time.perf_counter()
    result = fit(
        split.train,
        params,
        movie_genres=data.movie_genres,
        evals={"val": split.val.to_ratings()},
        callback=progress,
    )
    seconds = time.perf_counter() - started
    history = result.history
    final = history[-1].eval_rmse["val"]

    name = args.preset if args.dataset == "synthetic" else args.dataset
    lines = [
        f"# Gibbs chain-length rule: `model.mcse_tolerance` for `{args.model}` at `{name}`",
        "",
        f"`{' '.join(sys.argv)}`; {machine_facts()}",
        "",
        f"Train minus a {args.val_fraction:g} validation carve-out: {split.train.nnz:,} train, "
        f"{split.val.nnz:,} validation ratings; K={params.K}, {params.samples} samples, "
        f"burn-in {params.burn_in}; {seconds:.0f} s for the chain "
        f"({seconds / params.samples:.2f} s per sample). Full chain's validation RMSE "
        f"{final:.4f}.",
        "",
        "| tolerance (stars) | stops at sample | val RMSE there | excess over full chain "
        "| samples saved |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for tolerance in CANDIDATES:
        stop = stop_at(history, tolerance)
        rows.append((tolerance, stop, history[stop - 1].eval_rmse["val"] - final))
    # the largest tolerance that stops early and whose every smaller candidate costs at most
    # max_excess too (a lucky early stop above a costly one is noise, not a choice)
    suggested = None
    for tolerance, stop, excess in sorted(rows):
        if excess > args.max_excess:
            break
        if stop < params.samples:
            suggested = tolerance
    for tolerance, stop, excess in rows:
        rmse = final + excess
        lines.append(
            f"| {tolerance:g} | {stop} | {rmse:.4f} | {excess:+.4f} "
            f"| {1 - stop / params.samples:.0%} |"
        )
    lines += [
        "",
        "Largest tolerance whose stop costs at most "
        f"{args.max_excess:g} stars of validation RMSE: "
        + (f"**{suggested:g}**." if suggested is not None else "none stops the chain early."),
        "",
        "| sample | mcse | val RMSE |",
        "|---|---|---|",
    ]
    for record in history:
        if record.iteration % 25 == 0 and "mcse" in record.extra:
            lines.append(
                f"| {record.iteration} | {record.extra['mcse']:.4f} "
                f"| {record.eval_rmse['val']:.4f} |"
            )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out != "-":
        out = Path(args.out or REPO / "benchmarks" / "results" / f"mcse_{name}_{args.model}.md")
        out.write_text(table)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
