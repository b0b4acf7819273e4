"""A repository's url: the model checks the shape and the length apart (cheaper to build), and
accepts exactly what URL_PATTERN, the rule its JSON Schema states, accepts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_core import SchemaValidator, core_schema

from reconciler.model.kinds import Repository
from reconciler.model.patterns import URL_PATTERN

EXACT = SchemaValidator(core_schema.str_schema(pattern=URL_PATTERN))


def accepted_by_pattern(url: str) -> bool:
    try:
        EXACT.validate_python(url)
    except ValidationError:
        return False
    return True


def accepted_by_model(url: str) -> bool:
    try:
        Repository.model_validate({"name": "r", "url": url})
    except ValidationError:
        return False
    return True


URLS = [
    "https://deb.debian.org/debian",
    "http://x",
    "file:///srv/mirror",
    "https://",
    "ftp://x",
    "https://a b",
    "https://x\n",
    "https://x\t",
    "https://x\u00a0y",  # a Unicode space
    "https://ünï.example/ä",
    "HTTPS://x",
    " https://x",
    "https://a://b",
    *(f"{scheme}://" + "x" * n for scheme in ("http", "https", "file") for n in (1999, 2000, 2001)),
]


@pytest.mark.parametrize("url", URLS, ids=lambda u: repr(u)[:40])
def test_the_model_accepts_what_the_schema_pattern_accepts(url: str) -> None:
    assert accepted_by_model(url) == accepted_by_pattern(url)


def test_a_too_long_url_says_what_a_malformed_one_says() -> None:
    messages = []
    for url in ("https://" + "x" * 2001, "ftp://x"):
        with pytest.raises(ValidationError) as info:
            Repository.model_validate({"name": "r", "url": url})
        messages.append(str(info.value.errors()[0]["msg"]).removeprefix("Value error, "))
    assert messages[0] == "expected an http(s):// or file:// URL"
    assert "pattern" in messages[1]
