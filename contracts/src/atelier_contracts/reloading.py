"""A settings file read again when it changes, its last good version kept when an edit breaks it.

Export presets and the studio's catalogue (templates, chips, platforms) are such files: an
operator edits them while the platform runs; a typo is logged and never takes the feature down,
but a file that is invalid at start-up stops the start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class ReloadingFile(Generic[T]):
    """``parse(text, suffix)`` of ``path`` (or of ``default`` when path is None), parsed again
    when the file's modification time or size changes. ``parse`` raises ``ValueError`` on an
    invalid file."""

    def __init__(
        self,
        path: Path | None,
        parse: Callable[[str, str], T],
        default: Callable[[], tuple[str, str]],
        what: str,
    ) -> None:
        self.path = path
        self.what = what
        self._parse = parse
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        if path is None:
            self._value = parse(*default())
        else:
            self._value = parse(path.read_text(), path.suffix)  # invalid at start: fail
            self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> T:
        if self.path is not None:
            stamp = self._stat()
            if stamp != self._stamp:
                with self._lock:
                    self._reload(stamp)
        return self._value

    def _reload(self, stamp: tuple[int, int] | None) -> None:
        assert self.path is not None
        self._stamp = stamp
        try:
            self._value = self._parse(self.path.read_text(), self.path.suffix)
        except (OSError, ValueError) as exc:
            log.error("keeping the last good %s: %s", self.what, exc, extra={"path": str(self.path)})
            return
        log.info("%s reloaded", self.what, extra={"path": str(self.path)})
