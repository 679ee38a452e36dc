"""``nbsteps install-kernel-ext [--profile NAME] [--uninstall]``: load nbsteps in
every IPython kernel, so a ``%%step`` cell run first after a restart works.

Appends to ``$IPYTHONDIR/profile_NAME/ipython_config.py`` (``~/.ipython`` when
IPYTHONDIR is not set; profile ``default``) a block between two marker lines
that adds ``nbsteps`` to ``c.InteractiveShellApp.extensions`` (keeping the
extensions already configured). ``--uninstall`` removes exactly that block
(and the newline or the file it added): the rest of the file is kept byte for
byte. Both write the file atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbsteps.cli.driver import say
from nbsteps.errors import UsageError

BEGIN = "# >>> nbsteps install-kernel-ext >>>"
END = "# <<< nbsteps install-kernel-ext <<<\n"
_NEWLINE = " (+newline)"  # the block's first line when it added a newline to the file's last line
_NEW_FILE = " (+file)"  # ... when it created the file
BODY = (
    "# loads %%step / %steps in every IPython kernel; undo: nbsteps install-kernel-ext --uninstall\n"
    "c = get_config()  # noqa: F821\n"
    'c.InteractiveShellApp.extensions.append("nbsteps")\n'
)


def config_path(profile: str) -> Path:
    root = os.environ.get("IPYTHONDIR") or os.path.join(os.path.expanduser("~"), ".ipython")
    return Path(root).expanduser() / f"profile_{profile}" / "ipython_config.py"


def _read(path: Path) -> "str | None":
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it ({exc})") from None


def _write(path: Path, text: str) -> None:
    from nbsteps.files import atomic_write

    try:
        with atomic_write(path, "wb") as f:
            f.write(text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot write it ({exc.strerror or exc})") from None


def _find(text: str) -> "tuple[int, int, str] | None":
    """(start, end, the marker's flag) of the block in *text*."""
    start = text.find(BEGIN)
    if start < 0:
        return None
    end = text.find(END, start)
    if end < 0:
        return None
    flag = text[start + len(BEGIN) : text.find("\n", start)]
    return start, end + len(END), flag


def install(path: Path) -> str:
    text = _read(path)
    if text is not None and _find(text):
        return f"nbsteps: {path} already loads nbsteps in every kernel"
    flag = _NEW_FILE if text is None else (_NEWLINE if text and not text.endswith("\n") else "")
    block = f"{BEGIN}{flag}\n{BODY}{END}"
    new = (text or "") + ("\n" if flag == _NEWLINE else "") + block
    _write(path, new)
    return f"nbsteps: {path}: every IPython kernel of this profile loads nbsteps (undo: --uninstall)"


def uninstall(path: Path) -> str:
    text = _read(path)
    found = _find(text) if text is not None else None
    if found is None:
        return f"nbsteps: {path} has no block of nbsteps install-kernel-ext: nothing to remove"
    start, end, flag = found
    if flag == _NEWLINE and start > 0 and text[start - 1] == "\n":
        start -= 1
    rest = text[:start] + text[end:]
    if flag == _NEW_FILE and not rest:
        try:
            path.unlink()
        except OSError as exc:
            raise UsageError(f"{path}: cannot remove it ({exc.strerror or exc})") from None
        return f"nbsteps: removed {path} (install-kernel-ext had created it)"
    _write(path, rest)
    return f"nbsteps: {path}: nbsteps is no longer loaded in every kernel"


def kernel_ext_command(args) -> int:
    if not args.profile or "/" in args.profile or args.profile.startswith("."):
        raise UsageError(f"--profile {args.profile!r}: give a profile name such as default")
    path = config_path(args.profile)
    say(uninstall(path) if args.uninstall else install(path))
    return 0
