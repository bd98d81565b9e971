"""movielens-als: reproducible explicit-feedback matrix factorisation on MovieLens.

Layers, lowest first (a module may import only from layers above it in this list):

- ``errors``, ``atomic``, ``sparse``: exceptions, atomic file output, rating containers;
- ``data``: acquiring (registry, download, synthetic), indexing and splitting MovieLens;
- ``core``: the shared Numba ALS kernels, their NumPy reference, fitting and fold-in;
- ``evaluation``: error and ranking metrics over fitted models;
- ``figures``: plot functions that take data and return a matplotlib ``Figure``;
- ``tracking``: MLflow logging;
- ``config``: composing and validating the Hydra configuration, generating ``params.yaml``;
- ``stages``: thin Hydra entry points, one per DVC stage; ``cli``: the console script.
"""

__version__ = "0.1.0"
