"""Settings of ``tinyformer search`` and ``demo`` (no heavy imports: the CLI reads the
defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SearchOptions:
    dataset: str = "digits"
    root: str | None = None  # data folder for cifar10 / folder
    image_size: int | None = None  # folder data: resize to this square size
    channels: int | None = None  # folder data: 1 or 3
    supernet_epochs: int = 60
    population: int = 16
    generations: int = 10
    top_k: int = 3
    max_latency: float | None = None
    seed: int = 0
    space_samples: int = 16
    # the winner's training in ``demo``: from inherited weights, then gradual pruning,
    # fine-tuning and QAT
    epochs: int = 10
    prune_epochs: int = 10
    finetune_epochs: int = 5
    qat_epochs: int = 5
    # where and how visibly training runs (tinyformer.model.device)
    device: str = "auto"
    threads: int | None = None
    amp: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse settings that cannot run before anything trains (one clear line)."""
        for name, low in (("population", 2), ("generations", 1), ("top_k", 1),
                          ("supernet_epochs", 0), ("space_samples", 1),
                          ("epochs", 0), ("prune_epochs", 0), ("finetune_epochs", 0),
                          ("qat_epochs", 0)):  # fmt: skip
            if getattr(self, name) < low:
                flag = name.replace("_", "-")
                raise ValueError(f"--{flag} must be at least {low}, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {self.threads}")
        if self.max_latency is not None and not self.max_latency > 0:
            raise ValueError(f"--max-latency must be positive, got {self.max_latency}")


# ``make demo``: the same pipeline, smaller
QUICK = SearchOptions(supernet_epochs=15, population=8, generations=3, top_k=2, space_samples=8)

__all__ = ["QUICK", "SearchOptions"]
