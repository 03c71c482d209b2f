"""The execution layer's parts that need no Ray: shards and the firmware a node built."""

from __future__ import annotations

import pytest

from tinyformer.cluster.evaluate import split
from tinyformer.cluster.pool import FirmwarePackage
from tinyformer.cluster.runtime import ClusterError
from tinyformer.compiler.source_hash import firmware_id


def test_shards_cover_every_image_once_in_order() -> None:
    for n, parts in [(25, 4), (359, 6), (3, 8), (1, 1)]:
        ranges = split(n, parts)
        assert [i for r in ranges for i in r] == list(range(n))
        assert len(ranges) == min(n, parts) and max(map(len, ranges)) - min(map(len, ranges)) <= 1


def test_firmware_built_from_other_sources_is_refused() -> None:
    FirmwarePackage({}, firmware_id()).check_firmware()
    with pytest.raises(ClusterError, match="install the same TinyFormer on every host"):
        FirmwarePackage({}, "0" * 12).check_firmware()
