"""Integer reference implementations of the engine's ops: the definition of their semantics.

One module per op family. Every C kernel in ``firmware/kernels/`` must match these bit for bit.
"""
