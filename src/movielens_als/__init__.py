"""movielens-als: reproducible explicit-feedback matrix factorisation on MovieLens.

Layers, lowest first (a module may import only from layers above it in this list):

- ``errors``, ``atomic``, ``sparse``: exceptions, atomic file output, rating containers;
- ``data``: acquiring (registry, download, synthetic), indexing and splitting MovieLens;
- ``core``: the shared Numba ALS kernels, their NumPy reference, fitting and fold-in;
- ``evaluation``, ``analysis``: ranking metrics and descriptive statistics over data and models;
- ``figures``: plot functions that take data and return a matplotlib ``Figure``;
- ``tracking``: MLflow logging;
- ``tuning``: Optuna searches over the core's hyper-parameters;
- ``config``: composing and validating the Hydra configuration, generating ``params.yaml``;
- ``pipeline``: stage orchestration (inputs, outputs, tracking) as testable ``run(cfg)``;
- ``stages``: thin Hydra entry points, one per DVC stage; ``cli``: the console script;
  ``api``: the Python API (``fit``, ``load``, ``load_trained``, ``Recommender``), exported here.
"""

from movielens_als._kernel_cache import use_keyed_cache

# before any kernel module is imported: Numba reads its cache folder when a kernel is defined
use_keyed_cache()

__version__ = "0.1.0"
__all__ = ["Recommender", "__version__", "fit", "load", "load_trained"]
_API = {"Recommender", "fit", "load", "load_trained"}


def __getattr__(name: str):
    # The API is imported on first use, so `import movielens_als.<module>` stays light.
    if name in _API:
        from movielens_als import api

        return getattr(api, name)
    raise AttributeError(f"module 'movielens_als' has no attribute {name!r}")
