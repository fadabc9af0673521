"""`decode_members` reads what `json.loads` reads of strict JSON, handing the named arrays' entries over one by
one: checked on generated documents in every layout, and on what is not a JSON object."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.kube.json_walk import decode_members

TEXT = st.text(st.characters(codec="utf-8"))  # no lone surrogates: strict JSON
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT
VALUES = st.recursive(SCALARS,
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                      max_leaves=12)
DOCUMENTS = st.dictionaries(TEXT, VALUES, max_size=5)


@given(DOCUMENTS, st.lists(VALUES, max_size=5), st.sampled_from([None, 0, 2]), st.booleans())
def test_reads_what_json_loads_reads(document: dict[str, Any], items: list[Any], indent: int | None,
                                     items_first: bool) -> None:
    whole = {"items": items, **document} if items_first else {**document, "items": items}
    text = json.dumps(whole, indent=indent)
    seen: list[Any] = []
    members = decode_members(text.encode(), {"items": seen.append})
    assert members == {k: v for k, v in json.loads(text).items() if k != "items"}
    assert seen == json.loads(text)["items"]


@pytest.mark.parametrize(("text", "members", "entries"), [
    ("{}", {}, []),
    (' { "items" : [ ] } ', {}, []),
    ('{"items": null, "a": 1}', {"items": None, "a": 1}, []),  # not an array: kept as a member
    ('{"items": [1, [2, 3], {"b": [4]}], "metadata": {"continue": "x"}}', {"metadata": {"continue": "x"}},
     [1, [2, 3], {"b": [4]}]),
    ('{"other": [1, 2]}', {"other": [1, 2]}, []),
], ids=["empty", "empty array with spaces", "null array", "nested entries", "another array"])
def test_members_and_entries(text: str, members: dict[str, Any], entries: list[Any]) -> None:
    seen: list[Any] = []
    assert decode_members(text, {"items": seen.append}) == members
    assert seen == entries


@pytest.mark.parametrize("text", ["", "[]", "5", '{"a":1,}', '{"a" 1}', '{"a":1', '{1:2}', '{"a":1}x',
                                  '{"items":[1,}', '{"items":[1 2]}', '{"items":[1'],
                         ids=["empty", "an array", "a number", "trailing comma", "no colon", "cut short",
                              "a number as a name", "extra data", "trailing comma in the array",
                              "no comma in the array", "the array cut short"])
def test_refuses_what_is_not_one_json_object(text: str) -> None:
    with pytest.raises(ValueError):
        decode_members(text, {"items": lambda entry: None})
