"""TinyFormer: sparse transformer models for Cortex-M microcontrollers."""

__version__ = "0.1.0"
