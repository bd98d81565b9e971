"""``params.yaml`` — the values DVC runs the study with — as a composition of ``conf/``.

``conf/`` is the one source of the study's structure and defaults. ``params.yaml`` is always
``conf/`` composed with a list of Hydra overrides: none after ``make params``; an experiment's
after ``dvc exp run -S <override>`` (DVC's Hydra integration composes ``conf/`` with them) and
after ``dvc exp apply`` (which restores that file). The check recovers the overrides from the
file and proves the claim by composing ``conf/`` with them again, so an experiment's values are
kept by ``make repro``, while a file that no composition of ``conf/`` gives (a key ``conf/``
dropped or added, a hand edit of the wrong type) is refused.

    python -m movielens_als.config.params                       # rewrite params.yaml from conf/
    python -m movielens_als.config.params models.als.K=8        # … with overrides
    python -m movielens_als.config.params --check               # print what params.yaml adds to conf/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from movielens_als.atomic import write_text
from movielens_als.config.compose import compose, conf_dir

PARAMS_CONFIG = "config"
# The config groups an experiment may switch as a whole (`dvc exp run -S dataset=ml-1m`);
# each is a section of params.yaml of the same name.
SWITCHABLE_GROUPS = ("dataset", "split", "compute")


def render_params(overrides: list[str] | None = None) -> str:
    """The text DVC's Hydra composition writes: resolved config dumped by OmegaConf."""
    return OmegaConf.to_yaml(compose(PARAMS_CONFIG, overrides or []))


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def _override_value(value: Any) -> str:
    """A value in Hydra's override grammar (JSON scalars and lists are valid Hydra values)."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_override_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _group_options(group: str) -> list[str]:
    return sorted(path.stem for path in (conf_dir() / group).glob("*.yaml"))


def overrides_of(text: str) -> list[str] | None:
    """The Hydra overrides that compose ``conf/`` into ``text`` (``[]`` when it is conf/'s own
    composition), or None when no group switches plus value overrides give it.

    Each switchable group is matched on its own section: the option whose keys are the
    section's and whose values differ least (conf/'s default on a tie), so switches of several
    groups at once (``-S dataset=synthetic -S compute=dask``) are recovered too."""
    try:
        target = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(target, dict):
        return None
    wanted = _leaves(target)
    switch: list[str] = []
    for group in SWITCHABLE_GROUPS:
        wanted_section = _section(wanted, group)
        best: tuple[int, str | None] | None = None
        for option in [None, *_group_options(group)]:
            overrides = [] if option is None else [f"{group}={option}"]
            section = _section(
                _leaves(OmegaConf.to_container(compose(PARAMS_CONFIG, overrides))), group
            )
            if set(section) != set(wanted_section):
                continue
            differing = sum(section[key] != wanted_section[key] for key in section)
            if best is None or differing < best[0]:
                best = (differing, option)
        if best is None:
            return None
        if best[1] is not None:
            switch.append(f"{group}={best[1]}")
    base = _leaves(OmegaConf.to_container(compose(PARAMS_CONFIG, switch)))
    if set(base) != set(wanted):
        return None
    values = [f"{key}={_override_value(wanted[key])}" for key in wanted if base[key] != wanted[key]]
    overrides = [*switch, *values]
    return overrides if render_params(overrides) == text else None


def _section(leaves: dict[str, Any], group: str) -> dict[str, Any]:
    return {key: value for key, value in leaves.items() if key.split(".")[0] == group}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output", default="params.yaml", help="file to write or check (default: params.yaml)"
    )
    parser.add_argument(
        "--check", action="store_true", help="check that the file is a composition of conf/"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for dvc exp run -S")
    args = parser.parse_args(argv)
    output = Path(args.output)
    if not args.check:
        write_text(output, render_params(args.overrides))
        print(
            f"wrote {output}" + (f" (conf/ + {' '.join(args.overrides)})" if args.overrides else "")
        )
        return 0
    if not output.is_file():
        print(f"{output}: missing; run: make params", file=sys.stderr)
        return 1
    overrides = overrides_of(output.read_text(encoding="utf-8"))
    if overrides is None:
        print(
            f"{output}: not a composition of conf/ (its keys differ from conf/'s, or a value "
            "does not parse as conf/ composes it); run: make params "
            "(add OVERRIDES='key=value …' to keep values of yours)",
            file=sys.stderr,
        )
        return 1
    if not overrides:
        print(f"{output} matches conf/")
    else:
        print(
            f"{output} = conf/ + {' '.join(overrides)}\n"
            "  (an experiment's values, kept; `make params` resets to conf/, or put them in conf/)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
