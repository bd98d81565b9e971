"""A software prefetch of one matrix row, for the gathers of the row kernels.

Every row update first gathers the other side's factor rows of its ratings — random rows of
a matrix of 10-26 MB at ML-32M shape, so most reads miss the cache. The out-of-order core
overlaps only a few of those misses on its own (measured: 60 ns per rating and thread on
this project's 2-core benchmark machine); asking for the row a few ratings ahead keeps
several in flight and halves the gather's time (``benchmarks/bench_als.py`` prints both).
A prefetch is only a hint: it changes no result.

Numba has no prefetch function, so this is an ``@intrinsic`` emitting LLVM's
``llvm.prefetch`` (read, high locality, data cache).
"""

from __future__ import annotations

from llvmlite import binding, ir
from numba import config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# LLVM ≥ 15 has opaque pointers: the intrinsic is named by address space only
_PREFETCH = "llvm.prefetch.p0" if binding.llvm_version_info >= (15,) else "llvm.prefetch.p0i8"

# ratings ahead whose factor rows a gather asks for (8 was best of 0, 8, 16, 32 at K = 32)
PREFETCH_DISTANCE = 8


def item_pointer(context, builder, array_type, array, indices):
    """The address of ``array[indices]`` in an intrinsic's code (``array`` from
    ``context.make_array``; ``indices`` intp values; any layout)."""
    return cgutils.get_item_pointer2(
        context,
        builder,
        data=array.data,
        shape=cgutils.unpack_tuple(builder, array.shape),
        strides=cgutils.unpack_tuple(builder, array.strides),
        layout=array_type.layout,
        inds=indices,
    )


@intrinsic
def prefetch_line(typingctx, matrix, row, column):
    """Hint the CPU to load the cache line holding ``matrix[row, column]`` (2-D array)."""
    if not isinstance(matrix, types.Array) or matrix.ndim != 2:
        return None
    signature = types.void(matrix, row, column)

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        column_index = context.cast(builder, args[2], sig.args[2], types.intp)
        pointer = item_pointer(context, builder, array_type, array, [index, column_index])
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32]),
            _PREFETCH,
        )
        # (address, read = 0, locality = 3: keep in all levels, cache type = 1: data)
        builder.call(
            function, [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)]
        )
        return context.get_dummy_value()

    return signature, codegen


# float32 entries per 64-byte cache line
_LINE_FLOATS = 16


@njit(inline="always")
def prefetch_row(matrix, row):
    """Hint the CPU to load every cache line of ``matrix[row]`` (a row of K = 32 float32
    spans two lines; prefetching only the first would leave the second a demand miss)."""
    for column in range(0, matrix.shape[1], _LINE_FLOATS):
        prefetch_line(matrix, row, column)


if config.DISABLE_JIT:  # plain Python (NUMBA_DISABLE_JIT=1, the reference tests): no hint

    def prefetch_row(matrix, row):
        """No-op: an intrinsic only exists in compiled code."""
