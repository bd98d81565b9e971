"""The Hydra configuration: params.yaml in sync with conf/, validation naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from movielens_als.config import compose, validate
from movielens_als.config.params import render_params
from movielens_als.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_KEYS = {"K", "lam", "tau", "gamma", "eta", "iterations", "seed", "center", "reg_scaling", "genre_update", "init"}


def test_committed_params_yaml_matches_conf():
    committed = (REPO_ROOT / "params.yaml").read_text(encoding="utf-8")
    assert committed == render_params(), "params.yaml is stale: run `make params`"


def test_params_rendering_matches_dvc_hydra_composition(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(REPO_ROOT / "conf"), None, "config", str(tmp_path), ["als.model.K=64"])
    assert out.read_text(encoding="utf-8") == render_params(["als.model.K=64"])


def test_params_check_command_detects_stale_file(tmp_path):
    stale = tmp_path / "params.yaml"
    stale.write_text(render_params(["als.model.K=7"]))
    cmd = [sys.executable, "-m", "movielens_als.config.params", "--check", "--output", str(stale)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 1
    assert "out of date" in result.stderr


@pytest.mark.parametrize("stage", ["bias", "als", "genre_als"])
def test_stage_configs_expose_model_keys(stage):
    cfg = compose(stage)
    assert set(cfg.model) == MODEL_KEYS
    validate(cfg, stage)
    # params.yaml nests the same model under <stage>.model
    assert compose("config")[stage].model == cfg.model


def test_bias_defaults_are_the_notebooks():
    model = compose("bias").model
    assert (model.K, model.lam, model.gamma, model.center, model.iterations, model.init) == (0, 0.01, 0.01, True, 20, "zeros")


@pytest.mark.parametrize(
    ("stage", "override", "key"),
    [
        ("als", "model.K=0", "model.K"),
        ("als", "model.tau=-0.1", "model.tau"),
        ("als", "model.gamma=-1", "model.gamma"),
        ("genre_als", "model.eta=-1", "model.eta"),
        ("als", "model.iterations=0", "model.iterations"),
        ("als", "model.reg_scaling=weird", "model.reg_scaling"),
        ("bias", "model.K=4", "model.K"),
        ("split", "split.train_fraction=1.5", "split.train_fraction"),
        ("split", "split.train_fraction=0", "split.train_fraction"),
        ("split", "split.val_fraction=-0.1", "split.val_fraction"),
        ("download", "dataset.name=ml-99m", "dataset.name"),
    ],
)
def test_invalid_values_name_the_key(stage, override, key):
    cfg = compose(stage, [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg, stage)


def test_unknown_dataset_group_fails_at_composition():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="dataset"):
        compose("download", ["dataset=ml-99m"])


def test_hydra_output_dirs_stay_out_of_repo_root():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base=None):
        cfg = hydra_compose("als", return_hydra_config=True)
    assert str(cfg.hydra.run.dir).startswith("outputs/")
    assert str(cfg.hydra.sweep.dir).startswith("outputs/")
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "outputs/" in ignored


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
        ("analysis", "analysis.tier_edges=[500,100]", "analysis.tier_edges"),
        ("als", "tuned=true", "tuned"),
    ],
)
def test_invalid_section_values_name_the_key(stage, override, key):
    cfg = compose(stage, [override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg, stage)
