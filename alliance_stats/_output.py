"""Where results are written: safe file names, results folders and atomic single-file writes.

Every file the package writes goes through this module:

- :func:`slug` turns a name made from data (a column name, a group label) into a file name of
  ASCII letters, digits, ``-`` and ``_``; :meth:`ResultsFolder.reserve` de-duplicates such names
  (a ``_2`` suffix, compared without case) and :meth:`ResultsFolder.path` checks that the path
  resolves inside the results folder before anything is written.
- :class:`ResultsFolder` writes into a hidden temporary folder beside the target and moves it into
  place at the end, with a manifest (``alliance-stats-manifest.json``: every file and its SHA-256).
  An existing folder is replaced only with ``force=True``, only when its manifest shows that this
  package wrote it and nothing in it was added or changed since, and never when it holds an input.
- :func:`atomic_write` writes one file through a temporary file in the same folder and
  :func:`os.replace`.
- :func:`no_interrupt` holds SIGINT/SIGTERM back while a folder is swapped or cleaned, and
  :func:`interrupt_handlers` turns both signals into :class:`Interrupted` so that cleanup runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
import unicodedata
from pathlib import Path

from .exceptions import OutputPathError

MANIFEST = "alliance-stats-manifest.json"
#: Files an operating system drops into folders a person browses; they do not stop --force.
OS_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "Desktop.ini", ".directory"})
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def slug(name, max_length: int = 80) -> str:
    """A file name made from ``name``: ASCII letters, digits, ``-`` and ``_`` only.

    Accents are dropped (``Bündnis`` -> ``Bundnis``), every other character becomes ``_``, runs
    of ``_`` are merged, and the result is cut to ``max_length``. An empty result is
    ``"unnamed"``; a Windows device name (``CON``, ``NUL`` ...) gets a trailing ``_``.
    """
    text = unicodedata.normalize("NFKD", str(name))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    out = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else "_" for ch in text)
    while "__" in out:
        out = out.replace("__", "_")
    out = out.strip("_-")[:max_length].strip("_-") or "unnamed"
    if out.upper() in _WINDOWS_RESERVED:
        out += "_"
    return out


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def check_parent(path, what: str) -> None:
    """Raise :class:`OutputPathError` when a folder on the way to ``path`` is in fact a file."""
    path = Path(path).absolute()
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputPathError(
                    f"cannot write {what} {str(path)!r}: {str(parent)!r} is a file, not a folder. "
                    "Choose a path whose folders are folders."
                )
            return


@contextlib.contextmanager
def no_interrupt():
    """Hold SIGINT and SIGTERM back (POSIX) until the block ends; they are delivered after it."""
    block = hasattr(signal, "pthread_sigmask") and _SIGNALS
    if block:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal (SIGINT or SIGTERM); ``signum`` says which."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupt_handlers():
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (so ``finally``/``except``
    cleanup runs) instead of killing the process. Only in the main thread; a signal the process
    was started to ignore stays ignored; the old handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in _SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class ResultsFolder:
    """A results folder written through a temporary folder and moved into place by :meth:`commit`.

    Parameters
    ----------
    out : path
        The results folder.
    force : bool
        Replace an existing folder (only one this package wrote, see the module notes).
    protect : iterable of paths
        The study's inputs (configuration and data files): ``out`` may be neither one of them
        nor a folder holding one.
    formats : sequence of str
        Figure formats; PNG is always written (the report embeds it).
    """

    def __init__(self, out, *, force: bool = False, protect=(), formats=("png", "pdf")):
        self.out = Path(os.path.abspath(out))  # "." and "res/.." have no name to rename by
        self.force = force
        self.protect = [Path(p) for p in protect if p is not None]
        self.formats = tuple(dict.fromkeys(("png",) + tuple(formats)))
        self.tmp: Path | None = None
        self._used: dict[str, set] = {}
        self.check()

    # -- checks ----------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse an ``out`` that may not be written or replaced; called again before the move."""
        out = self.out
        check_parent(out, "the results folder")
        where = out.resolve()
        for p in self.protect:
            rp = p.resolve()
            if rp == where or rp.is_relative_to(where):
                what = "is" if rp == where else "holds"
                raise OutputPathError(
                    f"results folder {str(out)!r} {what} the study input {str(p)!r}; results are never written where "
                    f"they could replace an input. Choose a new folder for --out, e.g. {str(where.parent / (where.name + '-results'))!r}."
                )
        if not (out.exists() or out.is_symlink()):
            return
        if not self.force:
            raise OutputPathError(f"results folder {str(out)!r} already exists; pass --force to replace it")
        if out.is_symlink():
            raise OutputPathError(f"results folder {str(out)!r} is a symbolic link; --force replaces only a real "
                                  "folder. Give the folder it points to, or another --out.")
        if not out.is_dir():
            raise OutputPathError(f"{str(out)!r} is a file, not a results folder; --force replaces only a folder "
                                  "alliance-stats wrote. Choose another --out or move the file.")
        why = self._not_ours()
        if why:
            raise OutputPathError(
                f"--force replaces only a results folder alliance-stats wrote and nobody changed since, and "
                f"{str(out)!r} {why}. Move what you want to keep out of it and delete the folder yourself, "
                "or choose another --out."
            )

    def _not_ours(self) -> str:
        manifest = self.out / MANIFEST
        if not manifest.is_file():
            return f"has no {MANIFEST} (alliance-stats did not write it)"
        try:
            files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        except (ValueError, KeyError, TypeError):
            files = None
        if not isinstance(files, dict):
            return f"has a {MANIFEST} that cannot be read"
        extra, changed = [], []
        for root, dirs, names in os.walk(self.out):
            for name in names + [d for d in dirs if (Path(root) / d).is_symlink()]:
                p = Path(root) / name
                rel = p.relative_to(self.out).as_posix()
                if rel == MANIFEST or (name in OS_FILES and not p.is_symlink()):
                    continue
                if rel not in files or p.is_symlink():
                    extra.append(rel)
                elif sha256(p) != files[rel]:
                    changed.append(rel)
        parts = []
        for label, names in (("holds files alliance-stats did not write", extra), ("has files changed since it wrote them", changed)):
            if names:
                shown = ", ".join(sorted(names)[:5]) + (f" ... ({len(names) - 5} more)" if len(names) > 5 else "")
                parts.append(f"{label}: {shown}")
        return "; ".join(parts)

    # -- writing ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create the temporary folder (beside ``out``, so that the final move is a rename)."""
        with no_interrupt():
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}-", dir=self.out.parent))

    def path(self, *parts: str) -> Path:
        """The path of ``parts`` inside the results folder (its parent folders made), checked to
        resolve inside it."""
        if self.tmp is None:
            raise RuntimeError("ResultsFolder.start() was not called")
        p = self.tmp.joinpath(*parts)
        if not _inside(p, self.tmp) or p.resolve() == self.tmp.resolve():
            raise OutputPathError(f"output {'/'.join(parts)!r} would be written outside the results folder "
                                  f"{str(self.out)!r}; it was refused")
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def reserve(self, folder: str, name) -> str:
        """A file stem for ``name`` in ``folder``: :func:`slug`, with ``_2``, ``_3`` ... appended when
        another output already took it (compared without case, as on macOS and Windows)."""
        used = self._used.setdefault(folder, set())
        base = slug(name)
        stem, i = base, 1
        while stem.casefold() in used:
            i += 1
            stem = f"{base}_{i}"
        used.add(stem.casefold())
        return stem

    def table(self, df, name, index: bool = False) -> str:
        """Write ``df`` as ``tables/<stem>.csv`` (numbers at full precision, for reuse) and ``.md``
        (numbers in APA style, as in the report); return the stem."""
        from ._format import format_frame
        from .tables import markdown_table

        stem = self.reserve("tables", name)
        df.to_csv(self.path("tables", f"{stem}.csv"), index=index)
        shown = format_frame(df.reset_index() if index else df)
        self.path("tables", f"{stem}.md").write_text(markdown_table(shown) + "\n", encoding="utf-8")
        return stem

    def figure(self, obj, name, *, width=None, dpi: int | None = None) -> str:
        """Save a figure (or Axes/grid) as ``figures/<stem>.<format>`` for each format, close it;
        return the stem. ``width`` ("single", "double" or inches) sizes the saved file to a journal
        column (:func:`alliance_stats.save_figure`); ``dpi`` is the raster resolution (300)."""
        from matplotlib import pyplot as plt

        from .plots import save_figure, save_for_submission
        from .plots._style import DPI

        fig = getattr(obj, "figure", obj)
        fig = getattr(fig, "figure", fig)
        stem = self.reserve("figures", name)
        try:
            if width is not None:
                save_figure(obj, self.path("figures", f"{stem}.png"), formats=self.formats, width=width, dpi=dpi or DPI)
            else:
                for ext in self.formats:
                    save_for_submission(fig, self.path("figures", f"{stem}.{ext}"), dpi=dpi or DPI)
        finally:
            plt.close(fig)
        return stem

    def _write_manifest(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("alliance-stats")
        except PackageNotFoundError:
            v = "unknown"
        files = {}
        for root, _, names in os.walk(self.tmp):
            for name in names:
                p = Path(root) / name
                files[p.relative_to(self.tmp).as_posix()] = sha256(p)
        body = {"written_by": "alliance-stats", "version": v,
                "note": "alliance-stats --force replaces this folder only while these files are unchanged and alone",
                "files": dict(sorted(files.items()))}
        self.path(MANIFEST).write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")

    def commit(self) -> Path:
        """Write the manifest and move the results into place (an old folder is set aside, the
        new one moved in, the old one deleted; on failure the old one is put back)."""
        self._write_manifest()
        with no_interrupt():
            self.check()
            if self.out.exists():
                aside = self.out.with_name(f".{self.out.name}-old-{secrets.token_hex(4)}")
                self.out.rename(aside)
                try:
                    self.tmp.rename(self.out)
                except BaseException:
                    aside.rename(self.out)
                    raise
                shutil.rmtree(aside, ignore_errors=True)
            else:
                self.tmp.rename(self.out)
            self.tmp = None
        return self.out

    def abort(self) -> None:
        """Delete the temporary folder (nothing is moved into place)."""
        with no_interrupt():
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.tmp = None


def check_file_target(path, *, inputs=(), force: bool = False, what: str = "output file") -> None:
    """Refuse (:class:`OutputPathError`) to write ``path`` when it is one of ``inputs`` (also through a
    link or another spelling), a folder, under a parent that is a file, or an existing file
    without ``force``."""
    path = Path(path)
    check_parent(path, f"the {what}")
    for p in inputs:
        same = Path(p).resolve() == path.resolve()
        if not same and path.exists() and Path(p).exists():
            same = os.path.samefile(p, path)  # a hard link to the input
        if same:
            raise OutputPathError(f"the {what} {str(path)!r} is the input file; inputs are never overwritten. "
                                  "Write to a new file name.")
    if path.is_dir():
        raise OutputPathError(f"the {what} {str(path)!r} is a folder; give a file name.")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputPathError(f"the {what} {str(path)!r} already exists; pass --force to replace it, or choose another name")


def atomic_write(path, write, *, inputs=(), force: bool = False, what: str = "output file") -> Path:
    """Write one file: ``write(tmp_path)`` fills a temporary file in the target's folder, which then
    replaces ``path`` in one :func:`os.replace`.

    Checks the target with :func:`check_file_target` first. The temporary file is removed on any
    error or interrupt.
    """
    path = Path(path)
    check_file_target(path, inputs=inputs, force=force, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with no_interrupt():
            fd, name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=path.suffix, dir=path.parent)
            os.close(fd)
            tmp = Path(name)
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with no_interrupt():
            os.replace(tmp, path)
            tmp = None
    finally:
        if tmp is not None:
            with no_interrupt():
                tmp.unlink(missing_ok=True)
    return path
