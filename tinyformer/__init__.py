"""TinyFormer: sparse transformer models for Cortex-M microcontrollers."""

import os

# OpenMP threads that spin while they wait starve each other on a shared or oversubscribed
# machine: on 2 cores at load 13, a digits training step at 2 threads ran at 31 images/s
# spinning and 319 sleeping (1 thread: 332). Set before torch loads its OpenMP runtime,
# which reads it once; a user's own setting wins. Numerics do not depend on it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
