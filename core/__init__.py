"""The bottom layer: what every other package of cellseq shares, importing none of them.

The error root (:mod:`core.errors`), the quantity names of the results contract
(:mod:`core.quantities`) and the one reader of users' files (:mod:`core.input_files`) depend on
the standard library alone, so any layer may import them without pulling in another.
"""
