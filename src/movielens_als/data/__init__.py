"""Acquiring, parsing, indexing and splitting MovieLens releases.

Data flow: :mod:`registry` (which releases exist) → :mod:`download` (fetch and verify an
archive) or :mod:`synthetic` (generate a stand-in) → :mod:`parse` (files → DataFrames) →
:mod:`index` (contiguous indices, compact arrays) → :mod:`split` (train/test/validation in
both CSR layouts).
"""
