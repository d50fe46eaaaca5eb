"""Garbage collection of the content-addressed model cache (``data_dir/models``) and of
abandoned partial downloads (``data_dir/staging``).

Kept: every bundle the agent may need (the active version of each model, the previous
one for instant rollback, anything in flight: ``Book.keep``) plus the most recently
installed others up to ``max_versions`` bundles in all. Older ones are removed. A staging
directory whose bundle is not in flight any more (a newer generation replaced a download
that failed transiently) is removed.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

_DIGEST = re.compile(r"[0-9a-f]{64}")


def collect_garbage(models_root: Path, *, keep: set[str], max_versions: int) -> list[str]:
    """Remove cached bundles beyond ``max_versions`` that are not in ``keep``; their digests."""
    try:
        entries = [p for p in models_root.iterdir() if p.is_dir() and _DIGEST.fullmatch(p.name)]
    except FileNotFoundError:
        return []
    spare = len(entries) - max(max_versions, len(keep & {p.name for p in entries}))
    if spare <= 0:
        return []
    candidates = sorted((p for p in entries if p.name not in keep), key=lambda p: p.stat().st_mtime)
    removed = []
    for path in candidates[:spare]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
        logger.info(
            "cache: removed bundle %s (beyond %d kept versions)", path.name[:12], max_versions
        )
    return removed


def prune_staging(staging_root: Path, *, keep: set[str]) -> list[str]:
    """Remove staging directories of bundles not in ``keep``; their digests."""
    try:
        entries = list(staging_root.iterdir())
    except FileNotFoundError:
        return []
    removed = []
    for path in entries:
        if path.name in keep:
            continue
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
        logger.info("staging: removed abandoned partial download %s", path.name[:12])
    return removed
