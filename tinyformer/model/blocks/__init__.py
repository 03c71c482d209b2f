"""Block (stage) types: each module defines one, end to end; ``registry`` lists them.

A block type module holds the stage's config (the fields of a subnet's stage) and space (its
elastic choices), its elastic supernet stage, the plain stage that ``export`` extracts, and
the plain stage's QAT layer (``quantized()``), whose ``export`` is the stage's lowering to
the IR. The supernet, the subnet, QAT, export and the search's candidate graphs all derive
from these; adding a block type is a new module here, one line in ``registry`` and the
engine kernels of any new op.
"""
