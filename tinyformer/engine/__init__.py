"""SparseEngine: integer IR, numpy reference, sparse encoder, memory planner, C generator.

Imports numpy only (never torch): compiling a model must work without PyTorch.
"""
