"""Where a job reads and writes: path checks, the output lock, and its one error type."""

from __future__ import annotations

import errno
import os
import sys

from ..._exceptions import AzmlError

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

__all__ = ["JobError", "OutputLock", "check_paths", "output_error"]


class JobError(AzmlError):
    """A local problem stops the job: a path, a permission, the disk, another job's lock.

    ``reason`` is one of ``input_missing``, ``input_unreadable``, ``output_dir_missing``,
    ``output_is_input``, ``output_is_directory``, ``output_not_writable``, ``disk_full``,
    ``write_failed`` and ``locked``; ``path`` is the file concerned, ``pid`` the process holding
    the lock (when known), ``written`` the result lines written this run before the error.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        path: str,
        pid: int | None = None,
        strerror: str | None = None,
        written: int = 0,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path
        self.pid = pid
        self.strerror = strerror
        self.written = written


def output_error(exc: OSError, path: str, written: int = 0) -> JobError:
    """The :class:`JobError` of an ``OSError`` met opening, rewriting or writing the output."""
    code, why = exc.errno, exc.strerror or str(exc)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        reason = "disk_full"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "output_not_writable"
    elif code == errno.EISDIR:
        reason = "output_is_directory"
    elif code == errno.ENOENT:  # the directory went away
        reason, path = "output_dir_missing", os.path.dirname(os.path.abspath(path))
    else:
        reason = "write_failed"
    message = f"cannot write the output file {path!r}: {why}"
    return JobError(reason, message, path=path, strerror=why, written=written)


def check_paths(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str]) -> None:
    """Raise :class:`JobError` unless the input is a file and the output can be a new file."""
    src, out = os.fspath(input_path), os.fspath(output_path)
    if not os.path.exists(src):
        raise JobError("input_missing", f"input file {src!r} not found", path=src)
    if not os.path.isfile(src):
        raise JobError("input_unreadable", f"input {src!r} is not a file", path=src)
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        message = f"output directory {out_dir!r} does not exist"
        raise JobError("output_dir_missing", message, path=out_dir)
    if os.path.isdir(out):
        raise JobError("output_is_directory", f"output {out!r} is a directory", path=out)
    if os.path.exists(out) and os.path.samefile(src, out):
        raise JobError("output_is_input", "the output file must not be the input file", path=out)


# -- the output lock ---------------------------------------------------------------------------

#: ``flock`` errors meaning "this file system has no locks" rather than "someone holds it".
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


def _lock_holder(fd: int) -> int | None:
    """The pid holding a ``flock`` on the file open at ``fd``: from /proc/locks (Linux only)."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as fh:
            rows = [row.split() for row in fh]
    except OSError:
        return None
    for row in rows:
        if "FLOCK" in row and "->" not in row and key in row:
            pid = row[row.index(key) - 1]
            return int(pid) if pid.isdigit() and int(pid) > 0 else None
    return None


class OutputLock:
    """An exclusive, advisory lock on a job's output file, held while the job runs.

    POSIX: ``flock(LOCK_EX | LOCK_NB)`` on the output file itself; the kernel drops it when the
    process ends, even on ``kill -9``. A resume rewrite replaces the file: :meth:`follow` locks
    the replacement before the rename, so the path is never unlocked. Windows (no ``fcntl``):
    ``msvcrt.locking`` on ``OUTPUT.lock`` beside the output, left in place afterwards. On a
    file system without locks (``ENOLCK``, ``EOPNOTSUPP``) the job runs unlocked.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fds: list[int] = []

    def _refused(self, fd: int) -> JobError:
        pid = None if sys.platform == "win32" else _lock_holder(fd)
        os.close(fd)
        by = f" (pid {pid})" if pid else ""
        message = f"another job is writing {self.path!r}{by}"
        return JobError("locked", message, path=self.path, pid=pid)

    def acquire(self) -> OutputLock:
        """Take the lock (creating the output if needed) or raise :class:`JobError`."""
        if sys.platform == "win32":
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:
                raise self._refused(fd) from None
            self._fds.append(fd)
            return self
        for _ in range(3):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if self._flock(fd) and self._is_current(fd):
                    self._fds.append(fd)
                    return self
            except BlockingIOError:
                raise self._refused(fd) from None
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # replaced between open and flock by the job that held it: again
        raise JobError("locked", f"another job is rewriting {self.path!r}", path=self.path)

    @staticmethod
    def _flock(fd: int) -> bool:
        """``flock`` the file; ``True`` also where the file system has no locks (then unlocked)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise
        return True

    def _is_current(self, fd: int) -> bool:
        locked, current = os.fstat(fd), os.stat(self.path)
        return (locked.st_dev, locked.st_ino) == (current.st_dev, current.st_ino)

    def follow(self, fd: int) -> None:
        """Lock the file open at ``fd`` too: it is about to be renamed over the output."""
        if sys.platform != "win32":
            own = os.dup(fd)
            self._fds.append(own)
            self._flock(own)

    def release(self) -> None:
        """Drop the lock. Idempotent."""
        while self._fds:
            os.close(self._fds.pop())
