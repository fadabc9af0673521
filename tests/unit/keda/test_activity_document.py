"""The activity document's decoder takes each ScaledObject as it is decoded from the text
(adapter.kube.json_walk): the same document in any JSON layout reads the same, and what is not
a document is refused with a ValueError naming what is wrong."""

from __future__ import annotations

import json

import pytest

from adapter.keda.activity import ObjectActivity, TriggerActivity, decode_document, encode_document, encode_object

TRIGGER = TriggerActivity(index=0, type="redis", metric_name="s0-redis-jobs", metric_type="AverageValue",
                          target=5.0, activation=0.0, resolved=True, value=3.0, active=True, error=None,
                          failures=0, fallback=False, read_at="2026-12-02T10:00:00.000000Z")
ONE = ObjectActivity("ns", "one", "u-1", 1, None, (TRIGGER,), api_version="keda.sh/v1alpha1")
TWO = ObjectActivity("ns", "two", "u-2", 3, "broker unreachable", (), api_version="keda.sh/v1alpha1")
OBJECTS = [json.loads(encode_object(o)) for o in (ONE, TWO)]


@pytest.mark.parametrize("text", [
    encode_document("g7", True, [encode_object(ONE), encode_object(TWO)]).decode(),
    json.dumps({"scaledObjects": OBJECTS, "deleted": [], "full": True, "generation": "g7"}),  # another order
    json.dumps({"generation": "g7", "full": True, "scaledObjects": OBJECTS}, indent=2),  # whitespace everywhere
    "\n { \"generation\" : \"g7\" ,\"scaledObjects\" :\t[ " + " , ".join(json.dumps(o) for o in OBJECTS) + " ] } \n",
], ids=["as encoded", "members reordered", "indented", "spaces around every token"])
def test_reads_every_layout_of_one_document(text: str) -> None:
    document = decode_document(text)
    assert (document.generation, document.full, document.objects, document.deleted) == ("g7", True, (ONE, TWO), ())


@pytest.mark.parametrize(("text", "objects", "deleted"), [
    ('{"generation":"g1","full":false,"scaledObjects":[],"deleted":[{"namespace":"ns","name":"gone"}]}',
     (), (("ns", "gone"),)),
    ('{"generation":"g1","scaledObjects":null}', (), ()),
    ('{"generation":"g1"}', (), ()),
    ('{"generation":"g1","deleted":[{"kind":"ScaledJob","namespace":"ns","name":"j"}]}', (), (("ns", "ScaledJob/j"),)),
], ids=["a delta", "null objects", "no objects", "a deleted ScaledJob"])
def test_reads_deltas_and_empty_documents(text: str, objects: tuple[ObjectActivity, ...],
                                          deleted: tuple[tuple[str, str], ...]) -> None:
    document = decode_document(text.encode())
    assert (document.generation, document.objects, document.deleted) == ("g1", objects, deleted)


@pytest.mark.parametrize(("text", "says"), [
    ("[]", "Expected `object`, got `array`"),  # the JSON layout itself: tests/unit/kube/test_json_walk.py
    ('{"generation":"g1","scaledObjects":[' + encode_object(TWO).decode(), "truncated"),
    ('{"generation":"g1","scaledObjects":[1]}', "scaledObject must be an object"),
    ('{"generation":"g1","scaledObjects":5}', "scaledObjects must be a list"),
    ('{"generation":7}', "generation must be a string"),
    ('{"generation":"g1","scaledObjects":[{"namespace":"ns"}]}', "name must be a string"),
], ids=["an array", "entries cut short", "an entry not an object", "objects not a list", "generation a number",
        "an entry without a name"])
def test_refuses_what_is_not_a_document(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        decode_document(text)
