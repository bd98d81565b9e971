"""The seam every model variant plugs into: its typed parameters, per-side training state,
half-step, objective terms, predictions, fold-in and NumPy reference.

A variant is one module ``movielens_als.core.<name>`` exposing ``VARIANT`` (a ``Variant``
instance); a model config names it with ``variant: <name>``. ``core.fit.fit`` is one generic
loop over the two ``Side`` states that asks the variant for everything model-specific, and the
stages, sweep, K grid, ranking, fold-in and CLI ask the variant (or its parameters) instead of
branching on stage names. Adding a variant is one module here plus one ``conf/model/*.yaml``.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from movielens_als.errors import ConfigError
from movielens_als.sparse import CSR, RatingMatrix, Ratings

# Keys of a model config that name and place the model rather than parameterise it.
NAME_KEY = "name"
VARIANT_KEY = "variant"
TUNE_KEY = "tune"  # search ranges the sweep adds for this model (see tuning.search)
TITLE_KEY = "title"  # the model's name in figure titles
FIGURE_KEY = "figure"  # file name of its convergence figure (the notebook's names)
META_KEYS = (NAME_KEY, VARIANT_KEY, TUNE_KEY, TITLE_KEY, FIGURE_KEY)
DEFAULT_VARIANT = "als"
INITS = ("normal", "zeros")

# How a variant updates one row given the other side: "cholesky" solves (or samples) the
# row's (K+1)-dimensional conditional exactly; "cd" cycles over its coordinates
# (``core.coordinate``); "auto" picks cholesky below AUTO_CD_RATINGS train ratings, where it is
# fast anyway and exact, and cd at and above (see benchmarks/bench_als.py).
SOLVERS = ("auto", "cholesky", "cd")
AUTO_CD_RATINGS = 2_000_000


def resolved_solver(solver: str, n_ratings: int) -> str:
    """The solver ``solver`` stands for on a train set of ``n_ratings`` ratings."""
    if solver != "auto":
        return solver
    return "cd" if n_ratings >= AUTO_CD_RATINGS else "cholesky"


@dataclass(frozen=True)
class VariantParams:
    """Base of every variant's typed parameters (the ``model`` config group, less its name).

    Subclasses are frozen dataclasses that set ``variant`` and validate in ``__post_init__``
    (by calling ``check_fields``), with messages naming the key (``model.<key>``). Shared by
    all variants: K (latent factors), seed, center (include the train mean μ), genres (shrink
    movie factors toward the mean embedding of their genres), init.
    """

    variant: ClassVar[str] = ""
    # keys whose value must be an integer ≥ the given minimum / a finite number ≥ 0 / one of
    integer_keys: ClassVar[Mapping[str, int]] = {}
    number_keys: ClassVar[tuple[str, ...]] = ()
    choice_keys: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    bool_keys: ClassVar[tuple[str, ...]] = ()

    def check_fields(self) -> None:
        """Validate and normalise the declared keys (YAML ints for floats, numpy scalars)."""
        for name, minimum in self.integer_keys.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(f"model.{name} must be an integer, got {value!r}")
            if value < minimum:
                raise ConfigError(f"model.{name} must be ≥ {minimum}, got {value}")
            object.__setattr__(self, name, int(value))
        for name in self.number_keys:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ConfigError(f"model.{name} must be a number, got {value!r}")
            if not (math.isfinite(float(value)) and float(value) >= 0.0):
                raise ConfigError(f"model.{name} must be a finite number ≥ 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in self.bool_keys:
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise ConfigError(f"model.{name} must be true or false, got {value!r}")
            object.__setattr__(self, name, bool(value))
        for name, allowed in self.choice_keys.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"model.{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
                )

    @property
    def uses_genres(self) -> bool:
        """Whether fitting needs the movie–genre matrix (the one place this is decided)."""
        return bool(getattr(self, "genres", False))

    @property
    def n_iterations(self) -> int:
        """Sweeps of the generic loop (ALS iterations, Gibbs samples)."""
        raise NotImplementedError

    def with_iterations(self, n: int) -> VariantParams:
        """The same parameters with ``n`` sweeps (the sweep and K grid shorten or lengthen fits)."""
        raise NotImplementedError

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> VariantParams:
        """Build from a config mapping; unknown keys are a ConfigError naming them."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k not in META_KEYS}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown model key(s) {', '.join(unknown)} for variant {cls.variant!r}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    def replace(self, **changes: Any) -> VariantParams:
        return type(self).from_mapping({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Every key, ``variant`` first, as the saved model and MLflow record it."""
        return {VARIANT_KEY: self.variant, **asdict(self)}


@dataclass
class Side:
    """One side's training state: users given movies, or movies given users.

    ``matrix`` holds this side's rows (the user-major CSR for users, item-major for movies);
    ``bias`` (float32, n) and ``factors`` (float32, n×K) are updated in place by the half-step;
    ``prior`` is the per-row prior mean of the factors (the genre prior p_n), or None.
    ``schedule`` is the variant's work plan over the rows (built once), ``extra`` holds what a
    variant keeps per side (hyper-parameter draws, say).
    """

    name: str  # "user" | "movie": error messages and random streams use it
    index: int  # 0 for users, 1 for movies
    matrix: CSR
    bias: np.ndarray
    factors: np.ndarray
    counts: np.ndarray
    prior: np.ndarray | None = None
    schedule: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return self.matrix.n_rows


@dataclass
class TrainState:
    """Everything one fit carries between sweeps: both sides, μ, the genre side information
    and the variant's own extras (e.g. running sums of predictions)."""

    train: RatingMatrix
    mu: float
    users: Side
    items: Side
    movie_genres: CSR | None = None
    genre_factors: np.ndarray | None = None
    jittered_rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    rows: Any = None  # the RowRunner the half-steps run on (``core.rows``), set by ``fit``


class Variant:
    """What a model variant tells the generic loop. Subclasses override the hooks.

    ``params_type`` is the typed config; ``reference`` the module of its slow NumPy versions.
    One sweep of ``fit`` is: ``half_step(users given movies)``, ``half_step(movies given
    users)`` (the one that reports the squared error), ``end_sweep``, then ``objective`` and
    ``predict`` on each eval set; the fit ends after ``params.n_iterations`` sweeps or when
    ``converged``. A half-step is ``row_task`` (a pure function over a block of
    rows, ``core.rows.RowTask``) run by the fit's row runner, in this process or on Dask workers.
    """

    name: ClassVar[str] = ""
    params_type: ClassVar[type[VariantParams]] = VariantParams
    # how a sweep and the objective are labelled in curves and figures
    step_label: ClassVar[str] = "iteration"
    objective_label: ClassVar[str] = "Negative log-likelihood"

    @property
    def reference(self) -> ModuleType:
        raise NotImplementedError

    def start(
        self, params: VariantParams, train: RatingMatrix, movie_genres: CSR | None, mu: float
    ) -> TrainState:
        raise NotImplementedError

    def row_task(
        self,
        params: VariantParams,
        state: TrainState,
        side: Side,
        other: Side,
        *,
        sweep: int,
        compute_sse: bool,
    ):
        """The ``core.rows.RowTask`` that updates every row of ``side`` given ``other``."""
        raise NotImplementedError

    def half_step(
        self,
        params: VariantParams,
        state: TrainState,
        side: Side,
        other: Side,
        *,
        sweep: int,
        compute_sse: bool,
    ) -> float:
        """Update every row of ``side`` given ``other`` in place; return Σ squared residuals
        of the new rows (0 unless ``compute_sse``)."""
        task = self.row_task(params, state, side, other, sweep=sweep, compute_sse=compute_sse)
        row_sse, jittered = state.rows.run(side, task)
        state.jittered_rows += jittered
        # NumPy's pairwise sum over all rows in index order, however the rows were partitioned
        return float(np.sum(row_sse))

    def end_sweep(
        self, params: VariantParams, state: TrainState, *, sweep: int, sse: float
    ) -> None:
        """Work after both half-steps (genre embeddings, hyper-parameter draws, averages)."""

    def converged(self, params: VariantParams, state: TrainState, *, sweep: int) -> bool:
        """Whether the fit stops after this sweep, before ``params.n_iterations`` (e.g. a
        Gibbs chain whose Monte-Carlo error is small enough); asked after the sweep's record."""
        return False

    def objective(self, params: VariantParams, state: TrainState, *, sse: float) -> float:
        """The objective the sweep reports (the NLL for ALS)."""
        raise NotImplementedError

    def predict(
        self, params: VariantParams, state: TrainState, name: str, ratings: Ratings
    ) -> np.ndarray:
        """Predictions on eval set ``name`` after this sweep (default: the current model)."""
        return self.model(params, state).predict(ratings.user, ratings.item)

    def sweep_metrics(self, params: VariantParams, state: TrainState) -> dict[str, float]:
        """Extra per-sweep diagnostics for the curve (e.g. the sampled noise precision)."""
        return {}

    def model(self, params: VariantParams, state: TrainState):
        """The ``FactorModel`` the fit returns (and the stage saves)."""
        raise NotImplementedError

    def fold_in(self, model, items: np.ndarray, ratings: np.ndarray) -> tuple[float, np.ndarray]:
        """Bias and factors of a new user who rated ``items`` with ``ratings``."""
        raise NotImplementedError


_VARIANT_NAME = re.compile(r"[a-z][a-z0-9_]*")


def variant_named(name: str) -> Variant:
    """The ``VARIANT`` of module ``movielens_als.core.<name>``; ConfigError for unknown names."""
    if not isinstance(name, str) or not _VARIANT_NAME.fullmatch(name):
        raise ConfigError(f"model.variant must be a variant module name, got {name!r}")
    try:
        module = importlib.import_module(f"movielens_als.core.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"movielens_als.core.{name}":
            raise
        raise ConfigError(
            f"model.variant: unknown variant {name!r}; known: {', '.join(known_variants())}"
        ) from None
    variant = getattr(module, "VARIANT", None)
    if not isinstance(variant, Variant):
        raise ConfigError(
            f"model.variant: movielens_als.core.{name} is not a variant module (no VARIANT); "
            f"known: {', '.join(known_variants())}"
        )
    return variant


def known_variants() -> list[str]:
    """Names of the variant modules shipped in ``movielens_als.core``."""
    from pathlib import Path

    names = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "\nVARIANT = " in text:
            names.append(path.stem)
    return names


def model_params(values: Mapping[str, Any]) -> VariantParams:
    """Typed parameters of a model config (``variant`` picks the class; default ALS)."""
    if isinstance(values, VariantParams):
        return values
    variant = variant_named(str(values.get(VARIANT_KEY, DEFAULT_VARIANT)))
    return variant.params_type.from_mapping(values)


def variant_of(params: VariantParams) -> Variant:
    return variant_named(params.variant)
