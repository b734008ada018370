"""Saving a checkpoint without losing the last complete one when the save fails (a full disk).

verl makes a checkpoint count by writing its tracker, `latest_checkpointed_iteration.txt`, after
every other file of the step's folder. A save that fails before the tracker leaves it naming the
previous checkpoint; one that fails while writing it (verl opens it for writing, which empties
it, then writes the step) can leave it empty, and verl cannot resume from an empty tracker. So
the tracker's content is copied beside it before the save, and a failure puts the copy back;
a run killed mid-save (no chance to put it back) gets it back when it resumes.

Imports neither Ray nor verl: the entry point imports CheckpointSaveError before the run starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from sfpo_verl.atomic_file import atomic_file

TRACKER_FILE = "latest_checkpointed_iteration.txt"
# The tracker's content while a save is under way, to put back if the save fails.
TRACKER_COPY_SUFFIX = ".before_save"
ERROR_CHARS_KEPT = 300


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be saved; the message names the step, the error, the path written
    and the checkpoint a resume will load."""


@contextlib.contextmanager
def keep_resume_point(checkpoint_dir: str, step: int) -> Iterator[None]:
    """Run the save of checkpoint `step` inside this block. If it fails, the tracker again names
    the last complete checkpoint and CheckpointSaveError (one line) replaces the error."""
    tracker = os.path.join(checkpoint_dir, TRACKER_FILE)
    copy = tracker + TRACKER_COPY_SUFFIX
    before = _read(tracker)
    try:
        if before is not None:
            with atomic_file(copy, "wb") as out:
                out.write(before)
        yield
    except BaseException as error:  # an interrupt mid-save must not leave an emptied tracker either
        now = _read(tracker)
        complete = now == str(step).encode() and now != before  # it failed after its tracker (verl's callback)
        tracker_damaged = now != before and not complete
        if tracker_damaged:
            _put_back(tracker, copy, before)
        if not isinstance(error, Exception):
            raise
        resume_step = step if complete else _tracker_step(before)
        failed_path = tracker if tracker_damaged else None
        raise CheckpointSaveError(_describe(error, checkpoint_dir, step, resume_step, failed_path)) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(copy)


def restore_resume_point(checkpoint_dir: str) -> None:
    """Before a resume: a run killed while its tracker was being written (emptied, not yet
    rewritten) left the copy from before the save beside it; put it back so the resume loads the
    last complete checkpoint. A copy beside a tracker that names a step is stale (the kill came
    after the tracker was written, or before it was touched): removed."""
    tracker = os.path.join(checkpoint_dir, TRACKER_FILE)
    copy = tracker + TRACKER_COPY_SUFFIX
    if not os.path.exists(copy):
        return
    if _tracker_step(_read(tracker)) is None:
        os.replace(copy, tracker)
        print(f"[sfpo] {tracker} was left unfinished by an interrupted save: restored the one from before it")
    else:
        os.remove(copy)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _put_back(tracker: str, copy: str, before: bytes | None) -> None:
    if before is None:
        os.remove(tracker)  # there was none: a partial one must not count
    else:
        os.replace(copy, tracker)  # a rename: needs no free space


def _tracker_step(content: bytes | None) -> int | None:
    try:
        return int(content)
    except (TypeError, ValueError):
        return None


def _describe(
    error: Exception, checkpoint_dir: str, step: int, resume_step: int | None, failed_path: str | None
) -> str:
    # An error raised in a Ray worker (the model save) arrives wrapped; its `cause` is the original.
    cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else error
    folder = os.path.join(checkpoint_dir, f"global_step_{step}")
    path = failed_path or getattr(cause, "filename", None) or folder
    if resume_step is None:
        last = "no checkpoint is complete yet"
    else:
        last = f"the last complete checkpoint is global_step_{resume_step}"
    return f"saving checkpoint global_step_{step} failed: {repr(cause)[:ERROR_CHARS_KEPT]} writing {path}; {last}"
