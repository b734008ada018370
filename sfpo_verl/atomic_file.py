"""Writing a file so that readers see the old version or the whole new one, never a part.

The content goes to a temporary file in the same folder (`<name>.tmp`), flushed to disk, and
a rename puts it in place (atomic on POSIX). On any failure, the disk filling up included, the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """An open file (`mode` and `open_kwargs` as for open) whose content replaces `path` when
    the block ends without an error."""
    temporary = f"{os.fspath(path)}.tmp"
    try:
        with open(temporary, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = os.fspath(path)  # a failed write() names no file; messages should
        raise
