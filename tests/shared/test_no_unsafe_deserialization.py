"""No network input is unpickled or evaluated: swarm's code names no pickle, marshal, eval or exec at all."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

import pytest

import swarm

pytestmark = pytest.mark.timeout(30)

FORBIDDEN = {"pickle", "cPickle", "marshal", "shelve", "dill", "eval", "exec"}


def forbidden_names(source: str) -> list[tuple[int, str]]:
    """(line, name) of each forbidden name used as code: comments, strings and attributes of other objects (a
    llama.cpp model's `eval`, which decodes tokens) do not count."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    return [
        (token.start[0], token.string)
        for before, token in zip([None, *tokens], tokens, strict=False)
        if token.type == tokenize.NAME and token.string in FORBIDDEN and not (before and before.string == ".")
    ]


def test_the_check_sees_code_but_not_comments_strings_or_attributes() -> None:
    source = 'import pickle  # never marshal\nx = eval("1")\ndoc = "no exec here"\nllm.eval([1, 2])\nexec(doc)\n'
    assert forbidden_names(source) == [(1, "pickle"), (2, "eval"), (5, "exec")]


def test_swarm_never_unpickles_or_evaluates() -> None:
    package = Path(swarm.__file__).parent
    found = [
        f"{path.relative_to(package.parent)}:{line}: {name}"
        for path in sorted(package.rglob("*.py"))
        for line, name in forbidden_names(path.read_text())
    ]
    assert found == [], "unsafe deserialization or evaluation in swarm/:\n" + "\n".join(found)
