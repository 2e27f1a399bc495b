"""CRC-32 of a window cache shard, computed in the one pass that writes it (:class:`_Crc32Writer`) or reads it
(:class:`_ShardStream`); the format of the checksum is described in :mod:`neurorvq.data.cache`."""

from __future__ import annotations

import zlib

_FINISH_CHUNK = 1 << 20


class _Crc32Writer:
    """A write-only file wrapper that feeds every byte written to CRC-32 (the shard checksum, computed as the
    tar is written: no second pass over the file). After :meth:`discard` it swallows writes (a failed shard's
    tar writer can then be closed without touching the file again)."""

    def __init__(self, file) -> None:
        self.file, self.crc, self.size = file, 0, 0
        self.discarding = False

    def discard(self) -> None:
        self.discarding = True

    def write(self, data) -> int:
        if self.discarding:
            return memoryview(data).nbytes
        self.crc = zlib.crc32(data, self.crc)
        self.size += memoryview(data).nbytes
        return self.file.write(data)

    def flush(self) -> None:
        if not self.discarding:
            self.file.flush()


class _ShardStream:
    """Forward-only reader of one shard that feeds every byte passing through it (read, read into an array, or
    skipped) to CRC-32 when ``checksum``, so a shard is verified in the single pass that reads it.

    Never seeks: ``unread`` gives back bytes just read (they are not hashed twice), which is all the tar reader
    needs to hand a header over to ``tarfile``; so local files, fsspec files and ``pipe:`` streams take the same
    path. ``offset``: bytes consumed so far; :meth:`finish` reads to the end and returns ``(crc, total size)``."""

    def __init__(self, stream, checksum: bool = False) -> None:
        self._stream = stream
        self._readinto = getattr(stream, "readinto", None)
        self.checksum, self.crc, self.offset = checksum, 0, 0
        self._pending = b""

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(_FINISH_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        out = b""
        if self._pending:
            out, self._pending = self._pending[:n], self._pending[n:]
            self.offset += len(out)
            n -= len(out)
        parts = [out] if out else []
        while n > 0:
            chunk = self._stream.read(n)
            if not chunk:
                break
            if self.checksum:
                self.crc = zlib.crc32(chunk, self.crc)
            parts.append(chunk)
            self.offset += len(chunk)
            n -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        if self._pending:
            done = min(len(self._pending), len(view))
            view[:done], self._pending = self._pending[:done], self._pending[done:]
        while done < len(view):
            if self._readinto is not None:
                got = self._readinto(view[done:]) or 0
            else:
                chunk = self._stream.read(len(view) - done)
                got = len(chunk)
                view[done:done + got] = chunk
            if not got:
                break
            if self.checksum:
                self.crc = zlib.crc32(view[done:done + got], self.crc)
            done += got
        self.offset += done
        return done

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending
        self.offset -= len(data)

    def finish(self) -> tuple[int, int]:
        """Read (and hash) whatever is left, e.g. the tar end blocks and padding; ``(crc32, bytes in all)``."""
        buffer = bytearray(_FINISH_CHUNK)
        while self.readinto(buffer):
            pass
        return self.crc & 0xFFFFFFFF, self.offset
