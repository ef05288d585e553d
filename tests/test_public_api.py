"""The curated public surface: sorted __all__, every name importable, py.typed shipped."""

from __future__ import annotations

from pathlib import Path

import azml_client


def test_all_is_sorted_and_complete() -> None:
    names = azml_client.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(azml_client, name), name
    # "@py_builtins" etc.: pytest rewrites the modules of a distribution that has a plugin.
    public = {n for n in vars(azml_client) if not n.startswith(("_", "@"))}
    modules = {"formatters", "emulator", "cli", "langchain", "ray"}
    assert public - set(names) - modules == set()


def test_py_typed_is_shipped() -> None:
    assert (Path(azml_client.__file__).parent / "py.typed").is_file()


def test_exception_tree_is_drawn_in_the_docstring() -> None:
    from azml_client import _exceptions

    doc = _exceptions.__doc__ or ""
    for name in _exceptions.__all__:
        if name[0].isupper():
            assert name in doc, name
