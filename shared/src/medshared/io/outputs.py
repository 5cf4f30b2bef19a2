"""Safe outputs: refuse a dangerous output path before any work, and write file sets as a whole.

Rules (the same for every tool)
-------------------------------
An output path is refused, with one line naming the option and the user's path, when

- it is the same file as one of the command's inputs (after resolving symlinks; ``st_dev`` /
  ``st_ino`` are compared, so a hard link to an input counts as the input);
- something that is not a regular file is there: a folder, a FIFO, a socket, a device;
- it is a **symlink** (even to a regular file). Writing *through* a symlink would modify a file
  the user did not name, and renaming over it silently drops the link; refusing is the only
  choice that surprises nobody. Pass the link's target instead;
- its parent folder is missing, is not a folder, or is not writable (``os.access``; note that
  for root every folder is writable, so this check is a no-op there).

A multi-file result (a set of maps, a run folder) goes through :func:`output_set`: every file is
written into a staging folder beside (or, for an existing folder, inside) the target and moved
into place only when the whole set succeeded. On any exception, including Ctrl-C and the CLI
runner's SIGTERM (:class:`medshared.runner.Terminated`), the staging folder is removed and the
target is left exactly as it was: no partial set.

Example
-------
>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> with output_set(root / "maps", ["a.txt", "b.txt"]) as stage:
...     _ = (stage / "a.txt").write_text("1")
...     _ = (stage / "b.txt").write_text("2")
>>> sorted(p.name for p in (root / "maps").iterdir())
['a.txt', 'b.txt']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from medshared.errors import MedsharedError

__all__ = ["check_output_folder", "check_output_path", "output_set"]

PathLike = str | os.PathLike[str]

_KINDS = (
    (stat.S_ISDIR, "is a folder"),
    (stat.S_ISFIFO, "is a FIFO (named pipe)"),
    (stat.S_ISSOCK, "is a socket"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
)


def _label(what: str, path: PathLike) -> str:
    return f"{what} {os.fspath(path)}" if what else os.fspath(path)


def _special_kind(mode: int) -> str | None:
    """How a non-regular file type is called in a message, or ``None`` for a regular file."""
    for test, text in _KINDS:
        if test(mode):
            return text
    return None if stat.S_ISREG(mode) else "is not a regular file"


def _input_ids(inputs: Iterable[PathLike]) -> list[tuple[tuple[int, int], str]]:
    """``((st_dev, st_ino), name)`` of every input that exists (symlinks followed)."""
    ids = []
    for inp in inputs:
        if inp is None:
            continue
        try:
            st = os.stat(inp)
        except OSError:
            continue
        ids.append(((st.st_dev, st.st_ino), os.fspath(inp)))
    return ids


def _same_as_input(
    st: os.stat_result, ids: Sequence[tuple[tuple[int, int], str]]
) -> str | None:
    key = (st.st_dev, st.st_ino)
    for ident, name in ids:
        if ident == key:
            return name
    return None


def _check_parent(folder: Path, label: str) -> None:
    shown = os.fspath(folder) if str(folder) else "."
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise MedsharedError(
            f"{label}: folder {shown} does not exist; create it first"
        ) from None
    except OSError as exc:
        raise MedsharedError(f"{label}: cannot use folder {shown} ({exc.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise MedsharedError(f"{label}: {shown} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MedsharedError(f"{label}: folder {shown} is not writable (permission denied)")


def _check_target(target: Path, label: str, ids: Sequence[tuple[tuple[int, int], str]]) -> None:
    """Refuse ``target`` if it is a symlink, a non-regular file or one of the inputs."""
    try:
        lst = os.lstat(target)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise MedsharedError(f"{label}: a parent of this path is not a folder") from None
    if stat.S_ISLNK(lst.st_mode):
        try:
            st = os.stat(target)
        except OSError:
            st = None
        if st is not None and (same := _same_as_input(st, ids)) is not None:
            raise MedsharedError(
                f"{label}: is a symlink to the input {same}; writing it would destroy the "
                "input; choose another output path"
            )
        raise MedsharedError(
            f"{label}: is a symlink; outputs are never written through symlinks, "
            "name the real file (or remove the link)"
        )
    kind = _special_kind(lst.st_mode)
    if kind is not None:
        if stat.S_ISDIR(lst.st_mode):
            raise MedsharedError(f"{label}: {kind}, not a file; remove it or choose another name")
        raise MedsharedError(f"{label}: {kind}, not a regular file; refusing to replace it")
    same = _same_as_input(lst, ids)
    if same is not None:
        shown = "the input" if os.fspath(target) == same else f"the input {same}"
        raise MedsharedError(
            f"{label}: is {shown} (same file); writing it would destroy the input; "
            "choose another output path"
        )


def check_output_path(
    path: PathLike, inputs: Iterable[PathLike] = (), *, what: str = "output"
) -> Path:
    """Refuse an unsafe output file path before any work; return it as a ``Path``.

    Parameters
    ----------
    path : str or PathLike
        The file the command will write (created or replaced atomically).
    inputs : iterable of str or PathLike
        Every file the command reads; ``path`` must not be any of them (hard links and symlinks
        are resolved by comparing device and inode numbers). ``None`` entries are ignored.
    what : str
        How the user named this output in messages, e.g. ``"--json"`` or ``"output"``.

    Returns
    -------
    Path
        ``Path(path)``, unchanged (not resolved).

    Raises
    ------
    MedsharedError
        If ``path`` is an input, a symlink, a folder, a FIFO/socket/device, or its parent folder
        is missing, not a folder or not writable.
    """
    target = Path(path)
    label = _label(what, path)
    if not os.fspath(path) or os.fspath(path).endswith(os.sep):
        raise MedsharedError(f"{label}: expected a file name, not a folder path")
    _check_target(target, label, _input_ids(inputs))
    _check_parent(target.parent, label)
    return target


def _check_name(name: str, label: str) -> None:
    if not name or name in (".", "..") or "/" in name or (os.altsep and os.altsep in name):
        raise MedsharedError(f"{label}: {name!r} is not a plain file name")


def check_output_folder(
    folder: PathLike,
    names: Iterable[str] = (),
    inputs: Iterable[PathLike] = (),
    *,
    what: str = "--out",
) -> Path:
    """Refuse an unsafe output folder (for a multi-file result) before any work.

    The folder may exist (its files named in ``names`` are then replaced) or not (its parent
    must exist and be writable). Each ``folder / name`` must not be an input, a folder, a
    symlink or a special file.

    Parameters
    ----------
    folder : str or PathLike
        The output folder.
    names : iterable of str
        Plain file names (no ``/``) the command will write inside ``folder``.
    inputs : iterable of str or PathLike
        Every file the command reads.
    what : str
        The option's name in messages.

    Returns
    -------
    Path
        ``Path(folder)``.

    Raises
    ------
    MedsharedError
        Naming the option and path of the first problem found.
    """
    out = Path(folder)
    label = _label(what, folder)
    ids = _input_ids(inputs)
    try:
        lst = os.lstat(out)
    except FileNotFoundError:
        lst = None
    except NotADirectoryError:
        raise MedsharedError(f"{label}: a parent of this path is not a folder") from None
    if lst is None:
        _check_parent(out.parent, label)
    else:
        try:
            st = os.stat(out)  # a symlink to a folder is fine: files are renamed inside it
        except OSError:
            raise MedsharedError(f"{label}: is a broken symlink") from None
        if not stat.S_ISDIR(st.st_mode):
            kind = _special_kind(st.st_mode) or "is a file"
            raise MedsharedError(f"{label}: {kind}, not a folder; choose a folder for the outputs")
        if not os.access(out, os.W_OK | os.X_OK):
            raise MedsharedError(f"{label}: folder is not writable (permission denied)")
    for name in names:
        _check_name(name, label)
        if lst is not None:
            _check_target(out / name, _label(what, out / name), ids)
    return out


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path)


def _commit_into_existing(stage: Path, out: Path, ids: Sequence) -> None:
    """Move every entry of ``stage`` into the existing folder ``out``, all or nothing."""
    entries = sorted(p.name for p in stage.iterdir() if p.name != ".backup")
    # Validate every target first (the tree may have changed while the work ran).
    for name in entries:
        target = out / name
        if (stage / name).is_dir() and not (stage / name).is_symlink():
            if os.path.lexists(target):
                raise MedsharedError(
                    f"output {target}: already exists; a folder of results is never merged "
                    "into or replaces an existing one; remove it or choose another --out"
                )
            continue
        _check_target(target, _label("output", target), ids)
    backup = stage / ".backup"
    backup.mkdir()
    moved: list[str] = []  # names now holding the new result
    saved: list[str] = []  # names whose previous file is in backup/
    try:
        for name in entries:
            target = out / name
            if os.path.lexists(target):
                os.replace(target, backup / name)
                saved.append(name)
            os.replace(stage / name, target)
            moved.append(name)
    except BaseException:
        # Roll back: remove what this run moved in, put the previous files back.
        for name in moved:
            with contextlib.suppress(OSError):
                os.replace(out / name, stage / name)
        for name in saved:
            with contextlib.suppress(OSError):
                os.replace(backup / name, out / name)
        raise


@contextlib.contextmanager
def output_set(
    folder: PathLike,
    names: Iterable[str] | None = None,
    inputs: Iterable[PathLike] = (),
    *,
    what: str = "--out",
) -> Iterator[Path]:
    """Yield a staging folder; on success move its files into ``folder`` as a whole.

    ``folder`` is checked with :func:`check_output_folder` first (before the caller's work).
    When ``folder`` does not exist, the staging folder ``.<name>.staging-XXXX`` is created next
    to it and renamed onto it in one step. When it exists, the staging folder is created inside
    it (same file system, so every move is a rename); on success the new files are renamed in
    one by one after all targets were re-validated, the replaced files are kept aside until the
    last rename succeeded, and a failed rename rolls every earlier one back.

    On any exception in the body or the commit (``KeyboardInterrupt``, SIGTERM through the CLI
    runner included) the staging folder is deleted and ``folder`` is left as it was.

    Parameters
    ----------
    folder : str or PathLike
        The output folder.
    names : iterable of str, optional
        File names the body will write (validated before the body runs); ``None`` validates
        only the folder. Whatever the body writes into the staging folder is moved.
    inputs : iterable of str or PathLike
        Every file the command reads (never overwritten).
    what : str
        The option's name in messages.

    Yields
    ------
    Path
        The staging folder to write the files into (same names as the final files).
    """
    inputs = [i for i in inputs if i is not None]
    names = [] if names is None else list(names)
    out = check_output_folder(folder, names, inputs, what=what)
    ids = _input_ids(inputs)
    exists = os.path.isdir(out)
    where = out if exists else (out.parent if str(out.parent) else Path("."))
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name or 'out'}.staging-", dir=where))
    try:
        os.chmod(stage, _folder_mode())
        yield stage
        if exists:
            _commit_into_existing(stage, out, ids)
        else:
            if os.path.lexists(out):
                raise MedsharedError(f"{_label(what, out)}: appeared while the command ran")
            os.rename(stage, out)
            return
    finally:
        if exists or os.path.lexists(stage):
            _remove_tree(stage)


def _folder_mode() -> int:
    """The mode ``mkdir`` would give a new folder (0777 minus the umask); mkdtemp uses 0700."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask
