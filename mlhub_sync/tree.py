"""Files under an output folder, reached without following symbolic links.

Anyone who can write into an output folder (a shared project folder, a CI cache) could plant
a link where mlhub-sync writes, and have it write, truncate or delete elsewhere. The rule,
written once here and used for every file mlhub-sync creates, opens, renames or deletes under
a dataset folder, an asset folder or a staging folder:

- The **root** (the dataset or asset folder) is the user's own path, opened as given: links
  above it, or the root itself being a link to a bigger disk, are the user's choice.
- Every **folder below the root** is opened relative to its parent's fd with
  ``O_DIRECTORY|O_NOFOLLOW`` (made with ``mkdir(dir_fd=)`` when asked). A link there raises
  :class:`~mlhub_sync.errors.SymlinkError` naming the path: the caller makes it one asset's
  failure, or fatal for the dataset's own bookkeeping.
- **Files** are opened relative to their folder with ``O_NOFOLLOW`` (a link raises
  :class:`SymlinkError`); new ones with ``O_CREAT|O_EXCL`` on a fresh inode, after unlinking
  whatever had the name (:meth:`Folder.create`: a link is removed, never written through).
  Renames are ``os.replace`` with both ``dir_fd``\\ s and deletes ``unlink(dir_fd=)`` (both
  act on a link itself, never its target); stats do not follow links.

What it cannot stop: someone who *moves* a folder of the tree while a run writes into it (an
open folder is the folder that was checked, wherever it is moved later). They could move the
finished files anyway.

A :class:`Tree` keeps the folder fds it opened (a bounded LRU, like a worker's old ``mkdir``
cache), so the per-file path costs no more syscalls than a path-based one: a held folder
(:meth:`Tree.hold`) is never closed under its user. A tree belongs to one thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from mlhub_sync.errors import SymlinkError

__all__ = ["Entry", "Folder", "SymlinkError", "Tree", "create_new", "opened", "remove_tree"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

MAX_CACHED_FOLDERS = 128  # open folder fds a tree keeps (an fd each: well under ulimit -n)


def is_link(st: os.stat_result | None) -> bool:
    """True when an ``lstat`` result is a symbolic link."""
    return st is not None and stat.S_ISLNK(st.st_mode)


class Folder:
    """An open folder: its fd, and its path for messages. Every operation is relative to the
    fd and acts on the name itself (see the module's rule)."""

    __slots__ = ("fd", "path", "users")

    def __init__(self, fd: int, path: str):
        self.fd, self.path, self.users = fd, path, 0

    def child(self, name: str) -> str:
        """The path of ``name`` here (for messages)."""
        return f"{self.path}/{name}"

    def entry(self, name: str) -> Entry:
        """``name`` in this folder, as a value a file helper can take."""
        return Entry(self, name)

    def lstat(self, name: str) -> os.stat_result | None:
        """``name``'s own stat (a link is a link), or ``None`` when there is nothing."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def open(self, name: str, flags: int, mode: int = 0o644) -> int:
        """Open ``name`` with ``flags`` (plus ``O_NOFOLLOW|O_CLOEXEC``); a link raises
        :class:`SymlinkError`, other failures their ``OSError`` (with the full path)."""
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SymlinkError(self.child(name), "file") from None
            raise _with_path(exc, self.child(name)) from None

    def create(self, name: str, mode: int = 0o644, flags: int = os.O_WRONLY) -> int:
        """A new, empty ``name`` on a fresh inode, open with ``flags``: whatever had the name (a
        file, a hard link shared with a good file elsewhere, a symbolic link) is unlinked
        first, never truncated or written through. A folder there raises its ``OSError``."""
        try:
            try:
                return os.open(name, flags | _NEW_FLAGS, mode, dir_fd=self.fd)
            except FileExistsError:
                os.unlink(name, dir_fd=self.fd)
                return os.open(name, flags | _NEW_FLAGS, mode, dir_fd=self.fd)
        except OSError as exc:
            raise _with_path(exc, self.child(name)) from None

    def unlink(self, name: str) -> bool:
        """Remove ``name`` (a link is removed itself); ``False`` when there was nothing."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _with_path(exc, self.child(name)) from None
        return True

    def replace(self, name: str, into: Folder, new: str) -> None:
        """Rename ``name`` to ``new`` in ``into`` (a link at ``new`` is replaced itself)."""
        try:
            os.replace(name, new, src_dir_fd=self.fd, dst_dir_fd=into.fd)
        except OSError as exc:
            raise _with_path(exc, into.child(new)) from None

    def link(self, name: str, into: Folder, new: str) -> None:
        """Hard-link ``name`` as ``new`` in ``into`` (``new`` must not exist)."""
        os.link(name, new, src_dir_fd=self.fd, dst_dir_fd=into.fd, follow_symlinks=False)

    def names(self) -> list[os.DirEntry[str]]:
        """What is in this folder, sorted by name (``DirEntry.is_dir(follow_symlinks=False)``
        and friends tell a link from what it points to)."""
        with os.scandir(self.fd) as entries:
            return sorted(entries, key=lambda e: e.name)

    def close(self) -> None:
        """Close the fd (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Entry:
    """A name in a :class:`Folder` (a ``.part``, an asset): what file helpers take instead of a
    path. ``str()`` is its path, for messages."""

    __slots__ = ("folder", "name")

    def __init__(self, folder: Folder, name: str):
        self.folder, self.name = folder, name

    def __str__(self) -> str:
        return self.folder.child(self.name)

    def __repr__(self) -> str:
        return f"Entry({str(self)!r})"


class Tree:
    """A root folder and the folders below it, reached without following links (the module's
    rule), their fds cached (bounded LRU).

    ``root=None`` makes a tree without a root: each folder asked for is opened as given, as a
    root of its own (only the names in it are protected); tests and one-off callers use it.
    ``create`` makes the root when it is missing.
    """

    def __init__(
        self, root: Path | str | None, *, create: bool = False, cache: int = MAX_CACHED_FOLDERS
    ):
        self.root = None if root is None else os.fspath(root).rstrip("/") or "/"
        self._prefix = "" if self.root is None else self.root.rstrip("/") + "/"
        self._create_root = create
        self._limit = max(2, cache)
        self._cache: OrderedDict[str, Folder] = OrderedDict()

    def __enter__(self) -> Tree:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def hold(self, path: Path | str, *, create: bool = False) -> Folder:
        """The folder at ``path`` (the root or below it), opened (and made, with ``create``)
        folder by folder without following links. Give it back with :meth:`release`.

        Raises :class:`SymlinkError` for a link where a folder should be, ``NotADirectoryError``
        for a file there, ``FileNotFoundError`` when missing (without ``create``), and other
        ``OSError``\\ s as they come, each naming the path.
        """
        key = self._key(os.fspath(path))
        folder = self._cache.get(key)
        if folder is None:
            folder = self._open(key, create)
        else:
            self._cache.move_to_end(key)
        folder.users += 1
        return folder

    def release(self, folder: Folder) -> None:
        """Give back a folder from :meth:`hold` (the cache may close it from now on)."""
        folder.users -= 1

    @contextlib.contextmanager
    def folder(self, path: Path | str, *, create: bool = False) -> Iterator[Folder]:
        """:meth:`hold` as a context manager."""
        held = self.hold(path, create=create)
        try:
            yield held
        finally:
            self.release(held)

    def close(self) -> None:
        """Close every cached folder (the end of a run: nothing holds one any more)."""
        while self._cache:
            self._cache.popitem()[1].close()

    def __del__(self) -> None:  # a safety net; owners call close()
        with contextlib.suppress(Exception):
            self.close()

    def _key(self, path: str) -> str:
        if self.root is None:
            return path
        if path == self.root:
            return ""
        if not path.startswith(self._prefix):
            raise ValueError(f"{path} is not inside {self.root}")
        return path[len(self._prefix) :]

    def _open(self, key: str, create: bool) -> Folder:
        if self.root is None or not key:
            return self._put(key, _open_root(self.root or key, create or self._create_root))
        # Start from the deepest folder already open, then walk down one name at a time.
        base, rest = key, []
        while base and base not in self._cache:
            base, _, name = base.rpartition("/")
            rest.append(name)
        parent = self._cache.get(base) or self._open("", create)
        for name in reversed(rest):
            if name in ("", ".", ".."):
                raise ValueError(f"{self.root}/{key}: not a plain path below the root")
            child = base + "/" + name if base else name
            fd = _open_folder(parent.fd, name, create, f"{parent.path}/{name}")
            parent = self._put(child, Folder(fd, f"{parent.path}/{name}"))
            base = child
        return parent

    def _put(self, key: str, folder: Folder) -> Folder:
        self._cache[key] = folder
        excess = len(self._cache) - self._limit
        if excess > 0:
            # Close the least recently used folders nobody holds (never the root: every
            # walk starts there; never the one just opened).
            victims: list[str] = []
            for k, f in self._cache.items():
                if f.users == 0 and k and k != key:
                    victims.append(k)
                    if len(victims) >= excess:
                        break
            for k in victims:
                self._cache.pop(k).close()
        return folder


def _open_root(path: str, create: bool) -> Folder:
    """The root, opened as the user gave it (links in it are theirs)."""
    if create:
        os.makedirs(path, exist_ok=True)
    return Folder(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path)


def _open_folder(parent_fd: int, name: str, create: bool, shown: str) -> int:
    """Open the folder ``name`` of ``parent_fd`` without following a link (made if ``create``)."""
    for _ in range(3):  # a folder removed between our mkdir and open: try again, twice
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), shown) from None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=parent_fd)
        except OSError as exc:
            # O_DIRECTORY|O_NOFOLLOW on a link fails ENOTDIR on Linux (ELOOP elsewhere)
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                with contextlib.suppress(OSError):
                    if is_link(os.stat(name, dir_fd=parent_fd, follow_symlinks=False)):
                        raise SymlinkError(shown, "folder") from None
            raise _with_path(exc, shown) from None
    raise FileNotFoundError(errno.ENOENT, "the folder keeps disappearing", shown)


def _with_path(exc: OSError, shown: str) -> OSError:
    """``exc`` again, naming the full path (an ``*at`` call names only the last component)."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), shown)


@contextlib.contextmanager
def opened(root: Path | str, *, create: bool = False) -> Iterator[Folder]:
    """A root folder, open for a few operations on the names in it (the lock, the state db,
    the error report, the kept archive)."""
    folder = _open_root(os.fspath(root), create)
    try:
        yield folder
    finally:
        folder.close()


def create_new(root: Path, path: Path, mode: int = 0o644) -> int:
    """Open a new file at ``path`` (below ``root``) for writing, ``O_CREAT|O_EXCL``, its
    folders made on the way without following links; ``FileExistsError`` when it exists."""
    with Tree(root) as tree, tree.folder(path.parent, create=True) as folder:
        try:
            return os.open(path.name, os.O_WRONLY | _NEW_FLAGS, mode, dir_fd=folder.fd)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise FileExistsError(exc.errno, exc.strerror, str(path)) from None
            raise _with_path(exc, str(path)) from None


_REMOVE_WINDOW = 64  # levels remove_tree keeps open (two fds each), however deep the tree


def remove_tree(folder: Folder, name: str) -> None:
    """Remove ``name`` in ``folder`` and, for a folder, everything below it: never through a
    link (a link is removed itself), without recursion, and with at most
    :data:`_REMOVE_WINDOW` levels open at any depth (levels above are walked again by name).

    Each folder is listed once (an empty subfolder removed on the way, a full one emptied
    first): 100,000 subfolders cost 100,000 ``rmdir`` calls, not a listing each."""
    st = folder.lstat(name)
    if st is None or not stat.S_ISDIR(st.st_mode):
        folder.unlink(name)  # a file or a link (nothing there: nothing to do)
        return
    names = [name]  # the path from ``folder`` down to the level being emptied
    levels = [_Level(os.open(name, _DIR_FLAGS, dir_fd=folder.fd))]  # the deepest ones
    try:
        while names:
            level = levels[-1]
            descend = level.empty_files()
            if descend is not None:
                levels.append(_Level(os.open(descend, _DIR_FLAGS, dir_fd=level.fd)))
                names.append(descend)
                if len(levels) > _REMOVE_WINDOW:
                    levels.pop(0).close()
                continue
            levels.pop().close()
            here = names.pop()
            if not levels and names:  # above the window: open its levels again from the top
                levels = [_Level(fd) for fd in _walk_down(folder.fd, names, _REMOVE_WINDOW)]
            os.rmdir(here, dir_fd=levels[-1].fd if levels else folder.fd)
    finally:
        for level in levels:
            level.close()


class _Level:
    """A folder being emptied: its fd and its one listing (entries removed once passed)."""

    __slots__ = ("entries", "fd")

    def __init__(self, fd: int):
        self.fd = fd
        self.entries: Iterator[os.DirEntry[str]] | None = None

    def empty_files(self) -> str | None:
        """Remove what the listing has left up to a folder that is not empty: its name."""
        if self.entries is None:
            self.entries = os.scandir(self.fd)
        for entry in self.entries:
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.name, dir_fd=self.fd)
                continue
            try:
                os.rmdir(entry.name, dir_fd=self.fd)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                return entry.name
        return None

    def close(self) -> None:
        if self.entries is not None:
            self.entries.close()  # type: ignore[attr-defined]
        os.close(self.fd)


def _walk_down(top: int, names: list[str], keep: int) -> list[int]:
    """The fds of the last ``keep`` levels of ``top/names...``, opened one level at a time
    without following links (the levels above closed on the way)."""
    fds: list[int] = []
    parent = top
    try:
        for name in names:
            parent = os.open(name, _DIR_FLAGS, dir_fd=parent)
            fds.append(parent)
            if len(fds) > keep:
                os.close(fds.pop(0))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds
