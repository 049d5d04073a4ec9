"""Where the music apps find their datasets and keep their parsed-data caches.

Datasets live in ``<repo>/../shared/data/<name>`` (each with its own licence, never copied into
the project); a ``--data`` flag or an environment variable points elsewhere. Parsed data is
cached per kind under ``$NNSCRATCH_CACHE/<kind>``, else ``$XDG_CACHE_HOME/nnscratch/<kind>``,
else ``~/.cache/nnscratch/<kind>``.
"""
from __future__ import annotations

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def resolve_data_dir(name: str, env: str, override: str | None = None) -> str:
    """A dataset folder: ``override`` (a --data flag), else $``env``, else
    <repo>/../shared/data/name.

    Raises FileNotFoundError naming all three ways to point at the data when it is missing.
    """
    path = override or os.environ.get(env) or os.path.join(REPO_ROOT, "..", "shared", "data", name)
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"dataset folder not found: {path} (pass --data, set {env}, or put the shared data at "
            f"<repo>/../shared/data/{name})"
        )
    return path


def cache_dir(kind: str, override: str | None = None) -> str:
    """The cache folder of one kind of parsed data ('esac', 'drums'): ``override`` if given."""
    if override:
        return override
    base = os.environ.get("NNSCRATCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "nnscratch")
    return os.path.join(base, kind)
