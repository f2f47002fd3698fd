"""Detect a damaged ``torch.save`` file before loading it: truncation (no
zip directory) and changed bytes anywhere (zip member CRC-32 mismatch)."""
import os.path as osp
import zipfile
import zlib
from typing import Optional

_CHUNK = 1 << 20


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not an intact ``torch.save`` file, or None.

    Reads the whole file once: every zip member's CRC-32 is checked, so
    flipped bytes in a tensor or in ``data.pkl`` are found as well as a
    truncated write.
    """
    if not osp.isfile(path):
        return 'file does not exist'
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if not any(m.filename.endswith('data.pkl') for m in members):
                return 'no data.pkl in the archive'
            for member in members:
                crc = 0
                try:
                    with archive.open(member) as stream:
                        for chunk in iter(lambda: stream.read(_CHUNK), b''):
                            crc = zlib.crc32(chunk, crc)
                except zipfile.BadZipFile:  # zipfile checks the CRC too
                    crc = None
                if crc != member.CRC:
                    return (f'member {member.filename} is corrupt (CRC-32 '
                            'mismatch)')
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
            ValueError) as err:
        return f'not a complete checkpoint ({err})'
    return None


def check_checkpoint(path: str) -> None:
    """Raise :class:`CorruptCheckpointError` if ``path`` is damaged."""
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CorruptCheckpointError(
            f'checkpoint {path!r} is damaged: {problem}. Use another '
            'checkpoint or write this one again.')


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or has changed bytes."""
