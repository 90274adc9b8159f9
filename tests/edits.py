"""Edits of the package's sealed .npz files, for the tests of what reads them back:
``careless`` keeps the old seal (the seal's check must refuse the file), ``resealed``
seals the edited arrays again as the writer would (the reader's own checks must refuse
what is wrong in them)."""

from losstopo._io import SEAL, atomic_savez, load_npz, unseal


def careless(src, dst=None, **arrays):
    """``src`` with ``arrays`` replaced, its seal kept, written to ``dst`` (or over it)."""
    d = load_npz(src)
    assert SEAL in d, f"{src}: not sealed"
    atomic_savez(src if dst is None else dst, dict(d, **arrays))


def resealed(src, dst=None, kind=None, **arrays):
    """``src`` with ``arrays`` replaced and sealed again with its binding."""
    d = load_npz(src)
    binding = unseal(d, kind or _kind(src))
    binding.pop("digest")
    atomic_savez(src if dst is None else dst, dict(d, **arrays), seal=binding)


def _kind(src):
    import json

    return json.loads(str(load_npz(src)[SEAL]))["kind"]
