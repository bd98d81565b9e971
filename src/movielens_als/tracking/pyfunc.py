"""A trained model as an MLflow ``pyfunc``: a DataFrame of raw ``userId, movieId`` in, predicted
ratings out, so ``mlflow.pyfunc.load_model("runs:/<id>/model")`` and ``mlflow models serve``
answer with the library's own ``Recommender.predict``.

The model's files are the folder ``Recommender.save`` writes (arrays and JSON) and the
code file ``served_model.py`` that names the wrapper below, so nothing is pickled; loading
imports ``movielens_als``: serve with ``--env-manager local`` from an environment where it is
installed. This module is imported only when a model is logged or loaded (it imports mlflow),
and it is the one place the tracking layer uses the API's ``Recommender``.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import movielens_als

ARTIFACT = "recommender"  # key of the Recommender.save folder in the model's artifacts
INPUT_COLUMNS = ("userId", "movieId")
MODEL_CODE = Path(__file__).with_name("served_model.py")
# What loading and predicting imports besides the standard library: mlflow, and numpy, pandas
# and numba for Recommender.load and predict. Pinned to the versions that logged the model, as
# MLflow pins what it infers; given explicitly, they also spare log_model its requirement
# inference (it loads the model in a subprocess). movielens-als is not listed: it is not on
# PyPI, so no pip could install it; the model's metadata records its version, and
# --env-manager local uses the installed one.
REQUIRED_DISTRIBUTIONS = ("mlflow", "numpy", "pandas", "numba")

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("long", column) for column in INPUT_COLUMNS]),
    outputs=Schema([ColSpec("double")]),
)


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """``predict`` rates ``userId, movieId`` rows with the library's ``Recommender.predict``;
    an id the model never saw gets the terms that exist (``unknown="mean"``)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from movielens_als.api import load

        self.recommender = load(context.artifacts[ARTIFACT])

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        # Recommender.predict checks the frame: a DataError names missing or non-numeric columns
        return self.recommender.predict(model_input, unknown="mean")


def pip_requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIRED_DISTRIBUTIONS]


def log_recommender(recommender: Any, name: str) -> mlflow.models.model.ModelInfo:
    """Log ``recommender`` (an ``api.Recommender``) to the active run as the pyfunc ``name``."""
    # two rows of known ids (first and last of each map): the saved example, which MLflow
    # also scores once through the saved model before uploading it
    example = pd.DataFrame(
        {
            column: ids[[0, -1]].astype(np.int64)
            for column, ids in zip(
                INPUT_COLUMNS, (recommender.user_ids, recommender.movie_ids), strict=True
            )
        }
    )
    # MLflow's check of the example downloads the model with a progress bar on stderr, on
    # every training run; the stage's own progress lines are what a user should see
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        folder = recommender.save(Path(tmp) / ARTIFACT)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={ARTIFACT: str(folder)},
            signature=SIGNATURE,
            input_example=example,
            pip_requirements=pip_requirements(),
            metadata={"movielens_als_version": movielens_als.__version__},
        )
