"""Eight factor rows into eight columns at once, for the coordinate kernel's gather.

``coordinate`` stores the other side's factors of a row's ratings column-wise (one contiguous
vector per coordinate, so its coordinate cycle runs over contiguous memory). Written one value
at a time that is K scalar stores per rating into K different columns, which cost about as
much as the random reads themselves on an AMD EPYC host (AVX2; scratch timing of both
half-steps at ML-32M shape, K = 32: the gather and start took 2.2–2.6 s of 2.8–3.3 s, and
1.1–1.4 s with the stores left out). ``transpose_rows`` reads an 8 × 8
tile (eight ratings' factor rows, eight coordinates) as eight vector loads and writes it as
eight vector stores through one shuffle network — 24 shuffles instead of 64 scalar moves.
It only moves values: results are bit-identical to the scalar stores.

Numba has no shuffle function, so this is an ``@intrinsic`` emitting LLVM ``shufflevector``s
(AVX2's unpack / shuffle / permute-lanes pattern; LLVM lowers it for whatever vector width
the CPU has, SSE included). Arrays that are not C-contiguous take scalar loads and stores.
"""

from __future__ import annotations

from llvmlite import ir
from numba import config, types
from numba.extending import intrinsic

from movielens_als.core.prefetch import item_pointer

TILE = 8  # ratings × coordinates moved per call

_FLOATS = ir.VectorType(ir.FloatType(), TILE)
_INT32 = ir.IntType(32)


def _mask(lanes: list[int]) -> ir.Constant:
    return ir.Constant(ir.VectorType(_INT32, TILE), [ir.Constant(_INT32, lane) for lane in lanes])


# a, b → within each 128-bit half: a0 b0 a1 b1 | a2 b2 a3 b3 (unpacklo / unpackhi)
_PAIRS_LOW = _mask([0, 8, 1, 9, 4, 12, 5, 13])
_PAIRS_HIGH = _mask([2, 10, 3, 11, 6, 14, 7, 15])
# a, b → within each half: a0 a1 b0 b1 | a2 a3 b2 b3 (shufflps 0x44 / 0xEE)
_QUADS_LOW = _mask([0, 1, 8, 9, 4, 5, 12, 13])
_QUADS_HIGH = _mask([2, 3, 10, 11, 6, 7, 14, 15])
# a, b → the low halves of a and b / the high halves (permute2f128)
_HALVES_LOW = _mask([0, 1, 2, 3, 8, 9, 10, 11])
_HALVES_HIGH = _mask([4, 5, 6, 7, 12, 13, 14, 15])


def _load_run(context, builder, array_type, array, row, column):
    """array[row, column : column + 8] as one vector."""
    if array_type.layout == "C":
        pointer = item_pointer(context, builder, array_type, array, [row, column])
        return builder.load(builder.bitcast(pointer, _FLOATS.as_pointer()), align=4)
    vector = ir.Constant(_FLOATS, ir.Undefined)
    for lane in range(TILE):
        at = builder.add(column, context.get_constant(types.intp, lane))
        value = builder.load(item_pointer(context, builder, array_type, array, [row, at]))
        vector = builder.insert_element(vector, value, _INT32(lane))
    return vector


def _store_run(context, builder, array_type, array, row, column, vector):
    """array[row, column : column + 8] = vector."""
    if array_type.layout == "C":
        pointer = item_pointer(context, builder, array_type, array, [row, column])
        builder.store(vector, builder.bitcast(pointer, _FLOATS.as_pointer()), align=4)
        return
    for lane in range(TILE):
        at = builder.add(column, context.get_constant(types.intp, lane))
        pointer = item_pointer(context, builder, array_type, array, [row, at])
        builder.store(builder.extract_element(vector, _INT32(lane)), pointer)


def _transposed(builder, rows: list) -> list:
    """The columns of the 8 × 8 tile whose rows are ``rows``."""
    pairs = []
    for i in range(0, TILE, 2):  # (r0, r1) … (r6, r7)
        pairs.append(builder.shuffle_vector(rows[i], rows[i + 1], _PAIRS_LOW))
        pairs.append(builder.shuffle_vector(rows[i], rows[i + 1], _PAIRS_HIGH))
    quads = []  # quads[4h + c]: columns c and c + 4 of rows 4h … 4h + 3
    for first in (0, 4):
        low_a, high_a, low_b, high_b = pairs[first : first + 4]
        quads += [
            builder.shuffle_vector(low_a, low_b, _QUADS_LOW),
            builder.shuffle_vector(low_a, low_b, _QUADS_HIGH),
            builder.shuffle_vector(high_a, high_b, _QUADS_LOW),
            builder.shuffle_vector(high_a, high_b, _QUADS_HIGH),
        ]
    columns = [None] * TILE
    for c in range(4):
        columns[c] = builder.shuffle_vector(quads[c], quads[4 + c], _HALVES_LOW)
        columns[c + 4] = builder.shuffle_vector(quads[c], quads[4 + c], _HALVES_HIGH)
    return columns


@intrinsic
def transpose_rows(
    typingctx, source, rows, first, source_column, target, target_row, target_column
):
    """target[target_row + j, target_column + i] = source[rows[first + i], source_column + j]
    for i, j < 8: eight rows of ``source`` (float32, 2-D, picked by the index array ``rows``)
    become eight runs of ``target`` (float32, 2-D). No bounds checks: the caller's indices
    must be in range."""
    if not (
        isinstance(source, types.Array)
        and isinstance(target, types.Array)
        and isinstance(rows, types.Array)
        and source.ndim == 2
        and target.ndim == 2
        and rows.ndim == 1
        and source.dtype == types.float32
        and target.dtype == types.float32
        and isinstance(rows.dtype, types.Integer)
    ):
        return None
    signature = types.void(source, rows, first, source_column, target, target_row, target_column)

    def codegen(context, builder, sig, args):
        source_type, rows_type, _, _, target_type, _, _ = sig.args
        source_array = context.make_array(source_type)(context, builder, args[0])
        rows_array = context.make_array(rows_type)(context, builder, args[1])
        target_array = context.make_array(target_type)(context, builder, args[4])
        first, source_column, target_row, target_column = (
            context.cast(builder, args[i], sig.args[i], types.intp) for i in (2, 3, 5, 6)
        )
        loaded = []
        for i in range(TILE):
            at = builder.add(first, context.get_constant(types.intp, i))
            index = builder.load(item_pointer(context, builder, rows_type, rows_array, [at]))
            row = context.cast(builder, index, rows_type.dtype, types.intp)
            loaded.append(
                _load_run(context, builder, source_type, source_array, row, source_column)
            )
        for j, column in enumerate(_transposed(builder, loaded)):
            row = builder.add(target_row, context.get_constant(types.intp, j))
            _store_run(context, builder, target_type, target_array, row, target_column, column)
        return context.get_dummy_value()

    return signature, codegen


if config.DISABLE_JIT:  # plain Python (NUMBA_DISABLE_JIT=1, the reference tests)

    def transpose_rows(source, rows, first, source_column, target, target_row, target_column):
        """The same move with NumPy (an intrinsic only exists in compiled code)."""
        picked = source[rows[first : first + TILE], source_column : source_column + TILE]
        target[target_row : target_row + TILE, target_column : target_column + TILE] = picked.T
