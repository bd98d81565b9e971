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
- ``stages``: thin Hydra entry points, one per DVC stage; ``cli``: the console script.
"""

__version__ = "0.1.0"
