from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from xmpp_harness import Prosody, start_prosody  # noqa: E402


@pytest.fixture
def prosody(tmp_path: Path) -> Iterator[Prosody]:
    p = start_prosody(tmp_path, ["alice", "bob", "carol"])
    try:
        yield p
    finally:
        p.stop()
