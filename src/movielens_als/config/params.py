"""Generate ``params.yaml`` from ``conf/config.yaml`` — the same composition DVC performs for
``dvc exp run`` — or check that the committed file is current.

    python -m movielens_als.config.params          # rewrite params.yaml
    python -m movielens_als.config.params --check  # exit 1 when params.yaml is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from movielens_als.atomic import write_text
from movielens_als.config.compose import compose

PARAMS_CONFIG = "config"


def render_params(overrides: list[str] | None = None) -> str:
    """The text DVC's Hydra composition writes: resolved config dumped by OmegaConf."""
    return OmegaConf.to_yaml(compose(PARAMS_CONFIG, overrides or []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output", default="params.yaml", help="file to write or check (default: params.yaml)"
    )
    parser.add_argument("--check", action="store_true", help="only check that the file is current")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for dvc exp run -S")
    args = parser.parse_args(argv)
    text = render_params(args.overrides)
    output = Path(args.output)
    if args.check:
        if not output.is_file() or output.read_text(encoding="utf-8") != text:
            print(
                f"{output} is out of date with conf/; run: python -m movielens_als.config.params",
                file=sys.stderr,
            )
            return 1
        print(f"{output} matches conf/")
        return 0
    write_text(output, text)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
