"""Wall time and peak memory of each stage of one whole study, as DVC runs it.

    .venv/bin/python benchmarks/bench_study.py                       # ML-32M shape
    .venv/bin/python benchmarks/bench_study.py --preset small --out -  # quick, table to stdout

Runs, in a fresh clone of this repository's HEAD (``--workdir``; the project's own workspace
is left alone), ``dvc exp run -S dataset=synthetic -S dataset.synthetic.preset=<preset>``:
every stage of ``dvc.yaml`` (data, the five models, both 50-trial sweeps, the K grid, the
tuned refit, analysis, the validation fits, ranking, cross-validation). While it runs, the process tree is
sampled with psutil every ``--interval`` seconds; each stage process
(``python -m movielens_als.stages.<stage> … <its key>``) gets its first and last time seen
and its peak resident memory, children included. The table (Markdown) goes to ``--out``
(``benchmarks/results/study_<preset>.md`` by default), with the machine's facts above it.
Stages run one at a time, so the peak of the whole run is the largest stage peak (DVC's own
process is listed too).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"movielens_als\.stages\.(\w+)")
STAGE_KEY = re.compile(r"(?:train\.model|validation_fit\.model|\+space|kgrid\.K)=(\S+)")


def stage_label(cmdline: list[str]) -> str | None:
    """``train@als``, ``sweep@count``, ``kgrid@16``, ``ranking`` … for a stage process."""
    text = " ".join(cmdline)
    found = STAGE.search(text)
    if not found or "-c" in cmdline[:2]:
        return None
    key = STAGE_KEY.search(text)
    stage = found.group(1)
    if stage == "train" and "train.tuned=best" in text:
        stage = "tuned"
    return f"{stage}@{key.group(1)}" if key else stage


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_and_sample(command: list[str], cwd: Path, env: dict, interval: float) -> tuple[int, dict]:
    """Run ``command``; return its exit code and {label: [first, last, peak RSS]} per stage."""
    stages: dict[str, list[float]] = {}
    start = time.perf_counter()
    dvc = subprocess.Popen(command, cwd=cwd, env=env)
    root = psutil.Process(dvc.pid)
    dvc_peak = 0
    while dvc.poll() is None:
        now = time.perf_counter() - start
        try:
            members = root.children(recursive=True)
            dvc_peak = max(dvc_peak, root.memory_info().rss)
        except psutil.Error:
            members = []
        for member in members:
            try:
                label = stage_label(member.cmdline())
                if label is None or _is_stage(member.parent()):  # count a stage once
                    continue
                rss = tree_rss(member)
            except psutil.Error:
                continue
            seen = stages.setdefault(label, [now, now, 0])
            seen[1] = now
            seen[2] = max(seen[2], rss)
        time.sleep(interval)
    stages["dvc (its own process)"] = [0.0, time.perf_counter() - start, dvc_peak]
    return dvc.returncode, stages


def _is_stage(process: psutil.Process) -> bool:
    try:
        return stage_label(process.cmdline()) is not None
    except psutil.Error:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ml-32m", help="synthetic preset: small | ml-32m")
    parser.add_argument("--workdir", type=Path, default=None, help="clone here (default: temp)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--out", default=None, help="Markdown file, or - for stdout only")
    args = parser.parse_args()
    out = (
        None
        if args.out == "-"
        else Path(args.out or REPO / "benchmarks" / "results" / f"study_{args.preset}.md")
    )

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-study-"))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    if not (workdir / ".git").exists():
        subprocess.run(["git", "clone", "-q", str(REPO), str(workdir)], check=True)
    # the stages import movielens_als from this interpreter's environment (the editable
    # install of this repository, at the same commit as the clone)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [
        "dvc",
        "exp",
        "run",
        "-S",
        "dataset=synthetic",
        "-S",
        f"dataset.synthetic.preset={args.preset}",
    ]
    print(f"{' '.join(command)}  (in {workdir}, commit {commit})", flush=True)
    started = time.perf_counter()
    code, stages = run_and_sample(command, workdir, env, args.interval)
    wall = time.perf_counter() - started

    lines = [
        f"# Whole study at the synthetic `{args.preset}` shape",
        "",
        f"`{' '.join(command)}` at commit `{commit}`, measured by `benchmarks/bench_study.py` "
        f"on {time.strftime('%Y-%m-%d')}.",
        "",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical "
        f"cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python "
        f"{platform.python_version()}",
        f"- exit code {code}; wall time **{wall / 60:.1f} min**; peak RSS of the largest stage "
        f"**{max(s[2] for s in stages.values()) / 2**30:.2f} GiB**",
        "",
        "| stage | wall (s) | peak RSS (GiB) |",
        "|---|---:|---:|",
    ]
    for label, (first, last, peak) in sorted(stages.items(), key=lambda item: item[1][0]):
        lines.append(f"| {label} | {last - first:.0f} | {peak / 2**30:.2f} |")
    by_kind: dict[str, float] = {}
    for label, (first, last, _) in stages.items():
        if label.startswith("dvc"):
            continue
        by_kind[label.split("@")[0]] = by_kind.get(label.split("@")[0], 0.0) + last - first
    lines += ["", "| stage kind | wall (s) |", "|---|---:|"]
    lines += [f"| {kind} | {seconds:.0f} |" for kind, seconds in sorted(by_kind.items())]
    text = "\n".join(lines) + "\n"
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"written to {out}")
    sys.exit(code)


if __name__ == "__main__":
    main()
