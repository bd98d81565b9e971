"""Time parse + index + split on a synthetic release of the ML-32M shape.

    python benchmarks/bench_data.py [--preset ml-32m] [--repeats 3] [--cache DIR] [--no-baseline]

The synthetic files are generated once and cached (``benchmarks/.cache/`` by default, which
git ignores). Every repeat runs in a fresh subprocess so that its peak RSS (``ru_maxrss``)
is its own; Numba kernels are compiled (or loaded from their cache) before the clock starts.
The baseline, measured in the same run on the same files, is what one would write without
this package: ``pandas.read_csv`` with default options, ``pd.factorize``, a pandas
duplicate check and ``groupby``-built CSR arrays. Both must produce identical CSR arrays
(compared by digest). Targets on a 2-core machine (issue 12): <= 10 s and <= 3 GB peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
TARGET_SECONDS = 10.0
TARGET_RSS_GB = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="ml-32m", help="synthetic preset (tiny|small|ml-32m)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic release")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per implementation")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="folder for generated files"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--child", choices=["ours", "baseline", "io"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        runner = {"ours": run_ours, "baseline": run_baseline, "io": run_io}[args.child]
        result = runner(args.folder)
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(json.dumps(result))
        return

    folder = ensure_release(args.preset, args.seed, args.cache)
    size_gb = (folder / "ratings.csv").stat().st_size / 1e9
    print(f"release: {folder} (ratings.csv {size_gb:.2f} GB)")
    results = {"ours": [run_child("ours", folder) for _ in range(args.repeats)]}
    if not args.no_baseline:
        results["baseline"] = [run_child("baseline", folder) for _ in range(args.repeats)]
    report(results)
    io = run_child("io", folder)
    print(
        f"saving index + split {io['save_s']:.2f} s; loading: index {io['load_index_s']:.2f} s, "
        f"split {io['load_split_s']:.2f} s"
    )


def ensure_release(preset: str, seed: int, cache: Path) -> Path:
    from movielens_als.data.synthetic import SyntheticSpec, read_spec, write_release

    spec = SyntheticSpec.preset(preset, seed=seed)
    folder = cache / f"synthetic-{preset}-seed{seed}"
    if read_spec(folder) != spec:
        print(f"generating {preset} (seed {seed}) into {folder} ...", flush=True)
        started = time.perf_counter()
        write_release(spec, folder)
        print(f"  generated and written in {time.perf_counter() - started:.1f} s", flush=True)
    return folder


def run_child(kind: str, folder: Path) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--folder", str(folder)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if "total_s" in result:
        phases = "  ".join(
            f"{k} {v:.2f}" for k, v in result.items() if k.endswith("_s") and k != "total_s"
        )
        print(
            f"  {kind:8s} total {result['total_s']:6.2f} s  "
            f"peak RSS {result['peak_rss_gb']:.2f} GB  {phases}",
            flush=True,
        )
    return result


def digest(*arrays: np.ndarray) -> str:
    md5 = hashlib.md5()
    for array in arrays:
        md5.update(np.ascontiguousarray(array).tobytes())
    return md5.hexdigest()


def run_ours(folder: Path) -> dict:
    from movielens_als.data.index import build_index
    from movielens_als.data.parse import read_movies, read_ratings
    from movielens_als.data.registry import get_release
    from movielens_als.data.split import split_ratings
    from movielens_als.data.synthetic import SyntheticSpec, generate

    release = get_release("synthetic")
    warm_up = time.perf_counter()
    split_ratings(build_index(*generate(SyntheticSpec.preset("tiny")), release)[0])
    warm_up = time.perf_counter() - warm_up

    started = time.perf_counter()
    ratings, movies = read_ratings(release, folder), read_movies(release, folder)
    parsed = time.perf_counter()
    data, _ = build_index(ratings, movies, release)
    del ratings
    indexed = time.perf_counter()
    split, metrics = split_ratings(data)
    done = time.perf_counter()
    return {
        "parse_s": parsed - started,
        "index_s": indexed - parsed,
        "split_s": done - indexed,
        "total_s": done - started,
        "warmup_s": warm_up,
        "n_train": metrics["n_train"],
        "n_test": metrics["n_test"],
        "digest": digest(
            split.train.by_user.indptr,
            split.train.by_user.indices,
            split.train.by_item.indices,
            split.test.by_user.indices,
        ),
    }


def run_io(folder: Path) -> dict:
    """Time save_index + save_split, then load_index and load_split (fresh process)."""
    import shutil
    import tempfile

    from movielens_als.data.index import build_index, load_index, save_index
    from movielens_als.data.parse import read_movies, read_ratings
    from movielens_als.data.registry import get_release
    from movielens_als.data.split import load_split, save_split, split_ratings

    release = get_release("synthetic")
    out = Path(tempfile.mkdtemp(prefix="io-", dir=folder.parent))
    try:
        data, _ = build_index(read_ratings(release, folder), read_movies(release, folder), release)
        split, _ = split_ratings(data)
        started = time.perf_counter()
        save_index(data, out / "index")
        save_split(split, out / "split")
        saved = time.perf_counter()
        del data, split
        started_loading = time.perf_counter()
        load_index(out / "index")
        index_loaded = time.perf_counter()
        load_split(out / "split")
        split_loaded = time.perf_counter()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "save_s": saved - started,
        "load_index_s": index_loaded - started_loading,
        "load_split_s": split_loaded - index_loaded,
    }


def run_baseline(folder: Path) -> dict:
    import pandas as pd

    started = time.perf_counter()
    ratings = pd.read_csv(folder / "ratings.csv")
    movies = pd.read_csv(folder / "movies.csv")
    movies["genres"] = movies["genres"].str.split("|")
    parsed = time.perf_counter()
    stars = ratings["rating"].to_numpy()
    if not ((stars >= 0.5) & (stars <= 5) & (stars * 2 == np.rint(stars * 2))).all():
        raise ValueError("rating off scale")
    if ratings.duplicated(["userId", "movieId"]).any():
        raise ValueError("duplicates")  # the synthetic release has none
    user_codes, user_ids = pd.factorize(ratings["userId"], sort=True)
    item_codes, movie_ids = pd.factorize(ratings["movieId"], sort=True)
    frame = pd.DataFrame(
        {
            "user": user_codes.astype(np.int32),
            "item": item_codes.astype(np.int32),
            "rating": ratings["rating"].to_numpy(np.float32),
        }
    )
    del ratings
    indexed = time.perf_counter()
    in_train = np.random.RandomState(42).rand(len(frame)) < 0.9
    train, test = frame[in_train], frame[~in_train]

    def csr(part: pd.DataFrame, row: str, col: str, n_rows: int):
        ordered = part.sort_values(row, kind="stable")
        counts = ordered.groupby(row).size().reindex(range(n_rows), fill_value=0).to_numpy()
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return indptr, ordered[col].to_numpy(np.int32), ordered["rating"].to_numpy(np.float32)

    n_users, n_items = len(user_ids), len(movie_ids)
    train_by_user = csr(train, "user", "item", n_users)
    train_by_item = csr(train, "item", "user", n_items)
    test_by_user = csr(test, "user", "item", n_users)
    csr(test, "item", "user", n_items)
    done = time.perf_counter()
    return {
        "parse_s": parsed - started,
        "index_s": indexed - parsed,
        "split_s": done - indexed,
        "total_s": done - started,
        "n_train": len(train),
        "n_test": len(test),
        "digest": digest(train_by_user[0], train_by_user[1], train_by_item[1], test_by_user[1]),
    }


def report(results: dict[str, list[dict]]) -> None:
    print()
    medians = {}
    for kind, runs in results.items():
        medians[kind] = {
            key: statistics.median(run[key] for run in runs)
            for key in ("parse_s", "index_s", "split_s", "total_s")
        }
        peak = max(run["peak_rss_gb"] for run in runs)
        m = medians[kind]
        print(
            f"{kind:8s} median of {len(runs)}: parse {m['parse_s']:.2f} s, index {m['index_s']:.2f} s, "
            f"split {m['split_s']:.2f} s, total {m['total_s']:.2f} s; peak RSS {peak:.2f} GB"
        )
    ours = results["ours"]
    peak = max(run["peak_rss_gb"] for run in ours)
    total = medians["ours"]["total_s"]
    print(
        f"targets: total {total:.1f} s <= {TARGET_SECONDS:.0f} s: "
        f"{'met' if total <= TARGET_SECONDS else 'MISSED'}; peak RSS {peak:.2f} GB <= "
        f"{TARGET_RSS_GB:.0f} GB: {'met' if peak <= TARGET_RSS_GB else 'MISSED'}"
    )
    print(f"warm-up (Numba compile or cache load, not timed): {ours[0]['warmup_s']:.1f} s")
    if "baseline" in results:
        base = results["baseline"]
        same = base[0]["digest"] == ours[0]["digest"] and (
            base[0]["n_train"],
            base[0]["n_test"],
        ) == (ours[0]["n_train"], ours[0]["n_test"])
        print(
            f"baseline / ours (total): {medians['baseline']['total_s'] / total:.2f}x; "
            f"identical CSR arrays: {same}"
        )
        for phase in ("parse_s", "index_s", "split_s"):
            print(f"  {phase[:-2]:6s} {medians['baseline'][phase] / medians['ours'][phase]:.2f}x")
        if not same:
            raise SystemExit("the baseline and the package disagree")


if __name__ == "__main__":
    main()
