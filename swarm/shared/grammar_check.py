"""Checks a request's GBNF grammar with llama.cpp's own parser, so a coordinator refuses what no worker could run.

A coordinator does not otherwise load llama.cpp: the import happens on the first request that carries
a grammar. The parser is C and recursive in parentheses, so a nesting depth beyond any real grammar is
refused before it runs. Blocking (a C call): coordinators call it off their event loop.
"""

from __future__ import annotations

from swarm.shared.validation import InvalidRequest

GRAMMAR_ROOT = b"root"
MAX_NESTING = 256


def check_grammar(grammar: str, field: str = "grammar") -> None:
    """Raises InvalidRequest naming `field` when llama.cpp cannot build a sampler from the grammar."""
    depth = _deepest_parentheses(grammar)
    if depth > MAX_NESTING:
        raise InvalidRequest(field, f"nests parentheses {depth} deep; at most {MAX_NESTING} are supported")
    import llama_cpp

    # No vocabulary is needed to parse: the same check a worker's sampler makes, without a model.
    sampler = llama_cpp.llama_sampler_init_grammar(None, grammar.encode(), GRAMMAR_ROOT)
    if not sampler:
        raise InvalidRequest(
            field,
            "llama.cpp cannot parse it as GBNF with a `root` rule (a syntax error, an undefined rule "
            "or left recursion)",
        )
    llama_cpp.llama_sampler_free(sampler)


def _deepest_parentheses(grammar: str) -> int:
    """Parenthesis depth outside "literals", [classes] and # comments, as GBNF reads them."""
    depth = deepest = 0
    closing = ""
    escaped = False
    for char in grammar:
        if closing:
            if escaped:
                escaped = False
            elif char == "\\" and closing != "\n":
                escaped = True
            elif char == closing:
                closing = ""
        elif char in '"[#':
            closing = {'"': '"', "[": "]", "#": "\n"}[char]
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest
