"""``movielens-als``: use a model the pipeline trained.

    movielens-als recommend --rate "Toy Story (1995)=5" --rate "Matrix, The (1999)=4.5" [-n 20]
    movielens-als similar "Toy Story (1995)" [-n 10]

Both read a saved model (``--model als`` by default; any model the pipeline trained, e.g.
``genre_als``, ``bayes_als``, ``als_tuned``) and the index of the same dataset, from the folders
``dvc repro`` writes (``pipeline.layout.Layout``). How a new user is folded in is the model's
variant's business. Nothing is unpickled: models are ``.npz`` arrays plus JSON metadata.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from movielens_als.errors import MovieLensError


def build_parser() -> argparse.ArgumentParser:
    from movielens_als import __version__

    parser = argparse.ArgumentParser(prog="movielens-als", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the pipeline's project folder (default: the nearest folder holding dvc.yaml, from here up)",
    )
    common.add_argument(
        "--dataset",
        default="ml-latest-small",
        help="dataset the model was trained on (default: %(default)s)",
    )
    common.add_argument(
        "--model",
        "--stage",
        dest="model",
        default="als",
        help="which trained model to use: a folder under <results>/models/<dataset>/ (default: %(default)s)",
    )
    common.add_argument(
        "--data",
        default=Path("data"),
        type=Path,
        help="the pipeline's data folder, relative to the project folder (default: %(default)s)",
    )
    common.add_argument(
        "--results",
        default=None,
        type=Path,
        help="folder holding models/ (default: the data folder)",
    )
    common.add_argument(
        "-n", type=int, default=20, help="how many movies to list (default: %(default)s)"
    )
    common.add_argument(
        "--min-ratings",
        type=int,
        default=100,
        help="leave out movies with fewer training ratings (default: %(default)s, as the notebook)",
    )
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    commands = parser.add_subparsers(dest="command", required=True)
    recommend = commands.add_parser(
        "recommend", parents=[common], help="top movies for a new user (fold-in)"
    )
    recommend.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="MOVIE=RATING",
        required=True,
        help='a rating of the new user: title, unique title substring or movieId, e.g. "Toy Story (1995)=5" (repeatable)',
    )
    similar = commands.add_parser(
        "similar", parents=[common], help="movies whose factors are closest by cosine"
    )
    similar.add_argument("movie", help="title, unique title substring or movieId")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except MovieLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_result(args.command, result))
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from movielens_als.api import load_trained
    from movielens_als.recommend import MovieCatalogue, recommend_new_user, similar_movies

    project = args.project_dir or find_project(Path.cwd())
    recommender = load_trained(
        args.model, project_dir=project, dataset=args.dataset, data=args.data, results=args.results
    )
    model = recommender.model
    catalogue = MovieCatalogue(recommender.titles, recommender.movie_ids, recommender.rating_counts)
    if args.command == "recommend":
        return recommend_new_user(
            model,
            catalogue,
            args.rate,
            rating_scale=recommender.rating_scale,
            n=args.n,
            min_ratings=args.min_ratings,
        )
    return similar_movies(
        model.item_factors, catalogue, args.movie, n=args.n, min_ratings=args.min_ratings
    )


def find_project(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding ``dvc.yaml`` (else ``start`` itself)."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return start


def format_result(command: str, result: dict[str, Any]) -> str:
    if command == "recommend":
        rated = ", ".join(f"{r['title']} = {r['rating']:g}" for r in result["ratings"])
        header = f"Top {len(result['recommendations'])} for a user who rated: {rated}"
        rows = [
            (r["rank"], f"{r['score']:.2f}", r["n_ratings"], r["title"])
            for r in result["recommendations"]
        ]
        columns = ("#", "predicted", "ratings", "title")
    else:
        movie = result["movie"]
        header = f"Movies closest to {movie['title']} ({movie['n_ratings']} ratings)"
        rows = [
            (r["rank"], f"{r['cosine']:.3f}", r["n_ratings"], r["title"]) for r in result["similar"]
        ]
        columns = ("#", "cosine", "ratings", "title")
    widths = [max(len(str(c)), *(len(str(row[i])) for row in rows)) for i, c in enumerate(columns)]
    lines = [
        header,
        "  ".join(
            str(c).rjust(w) if i < 3 else str(c)
            for i, (c, w) in enumerate(zip(columns, widths, strict=True))
        ),
    ]
    for row in rows:
        lines.append(
            "  ".join(
                str(v).rjust(w) if i < 3 else str(v)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    footer = f"(movies with at least {result['min_ratings']} training ratings)"
    return "\n".join([*lines, footer])


if __name__ == "__main__":
    sys.exit(main())
