"""The Hydra configuration: params.yaml in sync with conf/, validation naming the key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from movielens_als.config import compose, validate
from movielens_als.config.params import render_params
from movielens_als.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
ALS_KEYS = {
    "K",
    "lam",
    "tau",
    "gamma",
    "eta",
    "iterations",
    "seed",
    "center",
    "reg_scaling",
    "genres",
    "genre_update",
    "init",
    "solver",
    "cd_passes",
}
META_KEYS = {"name", "variant", "title", "figure"}
MODELS = ["bias", "als", "genre_als", "bayes_als", "bayes_genre_als"]


def stage_config(stage: str, overrides=()):
    """A training model's stage config (``train model=<name>``) or another stage's own."""
    if stage in MODELS:
        return compose("train", [f"model={stage}", *overrides])
    return compose(stage, list(overrides))


def test_committed_params_yaml_matches_conf():
    committed = (REPO_ROOT / "params.yaml").read_text(encoding="utf-8")
    assert committed == render_params(), "params.yaml is stale: run `make params`"


def test_params_rendering_matches_dvc_hydra_composition(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    compose_and_dump(
        out, str(REPO_ROOT / "conf"), None, "config", str(tmp_path), ["models.als.K=64"]
    )
    assert out.read_text(encoding="utf-8") == render_params(["models.als.K=64"])


def _check(path):
    cmd = [sys.executable, "-m", "movielens_als.config.params", "--check", "--output", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)


def test_params_check_keeps_an_experiments_values(tmp_path):
    """What `dvc exp run -S` writes (conf/ + overrides, group switches included) is a valid
    params.yaml: the check names the overrides instead of asking to regenerate."""
    from movielens_als.config.params import overrides_of

    experiment = tmp_path / "params.yaml"
    overrides = ["split=temporal", "models.als.K=7", "kgrid.Ks=[2,4]", "analysis.model=genre_als"]
    experiment.write_text(render_params(overrides))
    recovered = overrides_of(experiment.read_text())
    assert render_params(recovered) == experiment.read_text()
    assert "models.als.K=7" in recovered and "kgrid.Ks=[2,4]" in recovered
    result = _check(experiment)
    assert result.returncode == 0, result.stderr
    assert "models.als.K=7" in result.stdout and "temporal" in result.stdout
    experiment.write_text(render_params())
    assert overrides_of(experiment.read_text()) == []
    assert "matches conf/" in _check(experiment).stdout


@pytest.mark.parametrize(
    "overrides",
    [
        ["compute=dask"],
        ["compute=dask", "compute.address=tcp://127.0.0.1:8786", "dataset=synthetic"],
        [
            "dataset=synthetic",
            "dataset.synthetic.preset=ml-32m",
            "split=temporal",
            "models.als.K=8",
        ],
    ],
)
def test_params_check_keeps_switches_of_several_groups(tmp_path, overrides):
    from movielens_als.config.params import overrides_of

    experiment = tmp_path / "params.yaml"
    experiment.write_text(render_params(overrides))
    recovered = overrides_of(experiment.read_text())
    assert recovered is not None and render_params(recovered) == experiment.read_text()
    switches = sorted(o for o in recovered if "." not in o.split("=")[0])
    assert switches == sorted(o for o in overrides if "." not in o.split("=")[0])


@pytest.mark.parametrize(
    ("edit", "old", "new"),
    [
        ("a key conf/ does not have", "    K: 32\n", "    K: 32\n    rank: 4\n"),
        ("a key conf/ has is gone", "    K: 32\n", ""),
        ("a value of another type", "    K: 32\n", "    K: [32]\n"),
        ("not YAML", "    K: 32\n", "    K: 32\n  : - :\n"),
    ],
)
def test_params_check_refuses_what_conf_cannot_compose(tmp_path, edit, old, new):
    stale = tmp_path / "params.yaml"
    stale.write_text(render_params().replace(old, new, 1))
    result = _check(stale)
    assert result.returncode == 1, edit
    assert "not a composition of conf/" in result.stderr


@pytest.mark.parametrize("model", MODELS)
def test_model_configs_name_their_variant_and_validate(model):
    from movielens_als.core import model_params

    cfg = compose("train", [f"model={model}"])
    assert cfg.model.name == model
    params = model_params(cfg.model)
    assert set(cfg.model) - META_KEYS - {"tune"} == set(params.to_dict()) - {"variant"}
    if params.variant == "als":
        assert set(cfg.model) - META_KEYS - {"tune"} == ALS_KEYS
    validate(cfg, "train")
    # params.yaml holds the same model under models.<name>
    assert compose("config").models[model] == cfg.model


def test_every_model_config_is_in_the_study():
    shipped = sorted(p.stem for p in (REPO_ROOT / "conf" / "model").glob("*.yaml"))
    assert sorted(compose("config").models) == shipped


def test_bias_defaults_are_the_notebooks():
    model = compose("train", ["model=bias"]).model
    assert (model.K, model.lam, model.gamma, model.center, model.iterations, model.init) == (
        0,
        0.01,
        0.01,
        True,
        20,
        "zeros",
    )


@pytest.mark.parametrize(
    ("stage", "override", "key"),
    [
        ("genre_als", "model.K=0", "model.genres"),
        ("als", "model.lam=0", "model.lam"),
        ("bayes_als", "model.burn_in=300", "model.burn_in"),
        ("bayes_als", "model.noise_shape=-1", "model.noise_shape"),
        ("bayes_als", "model.prior_rate=0", "model.prior_rate"),
        ("bayes_als", "+model.reg_scaling=count", "reg_scaling"),
        ("als", "model.variant=nosuch", "model.variant"),
        ("als", "model.tau=-0.1", "model.tau"),
        ("als", "model.gamma=-1", "model.gamma"),
        ("genre_als", "model.eta=-1", "model.eta"),
        ("als", "model.iterations=0", "model.iterations"),
        ("als", "model.reg_scaling=weird", "model.reg_scaling"),
        ("split", "split.train_fraction=1.5", "split.train_fraction"),
        ("split", "split.train_fraction=0", "split.train_fraction"),
        ("split", "split.val_fraction=-0.1", "split.val_fraction"),
        ("download", "dataset.name=ml-99m", "dataset.name"),
    ],
)
def test_invalid_values_name_the_key(stage, override, key):
    cfg = stage_config(stage, [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg, stage)


def test_unknown_dataset_group_fails_at_composition():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="dataset"):
        compose("download", ["dataset=ml-99m"])


def test_hydra_output_dirs_stay_out_of_repo_root():
    from movielens_als.stages._entry import HYDRA_SETTINGS

    assert HYDRA_SETTINGS["hydra.run.dir"].startswith("outputs/")
    assert HYDRA_SETTINGS["hydra.sweep.dir"].startswith("outputs/")
    assert "${run_stamp:}" in HYDRA_SETTINGS["hydra.sweep.dir"]
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "outputs/" in ignored


def test_a_stage_run_from_params_yaml_logs_briefly_and_writes_no_log_file(tmp_path):
    """As DVC runs it (--config-dir . --config-name params): the stage's own logging setup and
    a run folder of its own, though params.yaml has no hydra section."""
    (tmp_path / "params.yaml").write_text(
        render_params(
            ["dataset=synthetic", "dataset.synthetic.preset=tiny", "tracking.enabled=false"]
        )
    )
    env = {**os.environ, "MOVIELENS_ALS_CONF": str(REPO_ROOT / "conf")}
    cmd = [
        sys.executable,
        "-m",
        "movielens_als.stages.download",
        "--config-dir",
        ".",
        "--config-name",
        "params",
    ]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("[download]"), result.stderr
    (run_dir,) = (tmp_path / "outputs/hydra").glob("*/*")
    assert re.fullmatch(r"\d\d-\d\d-\d\d-\d+", run_dir.name), run_dir  # time and pid
    assert not list(run_dir.rglob("*.log"))


@pytest.mark.parametrize(
    ("stage", "override", "key"),
    [
        ("sweep", "tuning.n_trials=0", "tuning.n_trials"),
        ("sweep", "tuning.final_iterations=0", "tuning.final_iterations"),
        ("sweep", "tuning.val_fraction=0", "tuning.val_fraction"),
        ("kgrid", "kgrid.Ks=[]", "kgrid.Ks"),
        ("kgrid", "kgrid.K=0", "kgrid.K"),
        ("ranking", "ranking.ks=[]", "ranking.ks"),
        ("ranking", "ranking.prior_weights=[-1]", "ranking.prior_weights"),
        ("ranking", "ranking.val_fraction=1", "ranking.val_fraction"),
        ("ranking", "ranking.max_users=0", "ranking.max_users"),
        ("ranking", "ranking.models=[als,als]", "ranking.models: names a model twice"),
        ("validation_fit", "validation_fit.model=bias", "one of ranking.models"),
        ("sweep", "tuning.pruner=hyper", "tuning.pruner"),
        ("sweep", "tuning.pruner_reduction_factor=1", "tuning.pruner_reduction_factor"),
        ("analysis", "analysis.tier_edges=[500,100]", "analysis.tier_edges"),
        ("als", "tuned=true", "tuned"),
    ],
)
def test_invalid_section_values_name_the_key(stage, override, key):
    cfg = stage_config(stage, [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg, stage)
