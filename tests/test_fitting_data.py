"""The verifier's fitting data is labelled by construction (eval/fitting_data.py): the split, and each variant."""

from __future__ import annotations

import random

from eval import fitting_data

ROWS = [
    {"id": "a", "question": "Where was the director of film The Prairie King born?", "answers": ["Ohio"],
     "sources": ["The Prairie King#1", "B. Reeves Eason#2"], "answerable": True, "type": "compositional"},
    {"id": "b", "question": "Where was the director of film Confessions Of An Opium Eater born?", "answers": ["Chicago"],
     "sources": ["Confessions of an Opium Eater#3", "Albert Zugsmith#4"], "answerable": True, "type": "compositional"},
    {"id": "c", "question": "What is the capital?", "answers": [], "sources": [], "answerable": False},
]
CORPUS = [
    {"id": "The Prairie King#1", "title": "The Prairie King", "text": "The Prairie King is a 1927 film by B. Reeves Eason."},
    {"id": "B. Reeves Eason#2", "title": "B. Reeves Eason", "text": "B. Reeves Eason was born in Ohio."},
    {"id": "Confessions of an Opium Eater#3", "title": "Confessions Of An Opium Eater",
     "text": "Confessions Of An Opium Eater is a film by Albert Zugsmith. Confessions Of An Opium Eater came out in 1962."},
    {"id": "Albert Zugsmith#4", "title": "Albert Zugsmith", "text": "Albert Zugsmith was born in Chicago."},
    {"id": "Other#5", "title": "Other", "text": "The Prairie King was shown in Ohio."},
]


def test_the_two_hop_pool_is_split_the_same_way_every_time() -> None:
    rows = [{"id": f"q{i}", "question": f"q{i}?"} for i in range(150)]
    fit, dev = fitting_data.twowiki_split(rows)
    assert len(dev) == fitting_data.TWOWIKI_DEV_SIZE and len(fit) == 50
    assert not {r["id"] for r in fit} & {r["id"] for r in dev}
    assert fitting_data.twowiki_split(list(reversed(rows))) == (fit, dev)  # by id, not by file order


def test_withheld_and_half_leave_out_supporting_paragraphs_and_make_the_question_unanswerable() -> None:
    withheld = fitting_data.withheld(ROWS[0])
    assert withheld["withheld_sources"] == sorted(ROWS[0]["sources"]) and withheld["id"] == "a:withheld"
    half = fitting_data.half(ROWS[0], random.Random(0))
    assert half is not None and len(half["withheld_sources"]) == 1 and half["withheld_sources"][0] in ROWS[0]["sources"]
    for row in (withheld, half):
        assert row["answerable"] is False and row["answers"] == [] and row["withheld_answers"] == ROWS[0]["answers"]
    assert fitting_data.half({**ROWS[0], "sources": ["only#1"]}, random.Random(0)) is None  # one paragraph: no half


def test_a_swap_puts_a_peers_name_of_the_same_kind_in_the_question_and_leaves_out_every_paragraph_naming_it() -> None:
    text = "\n".join(f"{p['title']}\n{p['text']}" for p in CORPUS)
    swapped = fitting_data.swap(ROWS[0], ROWS, text, CORPUS, random.Random(0))
    assert swapped is not None and swapped["swapped"] == ["The Prairie King", "Confessions Of An Opium Eater"]
    assert swapped["question"] == "Where was the director of film Confessions Of An Opium Eater born?"
    assert swapped["withheld_sources"] == ["Confessions of an Opium Eater#3"]  # the new name's paragraphs only
    assert swapped["answerable"] is False and swapped["id"] == "a:swap"
    assert fitting_data.swap(ROWS[2], ROWS, text, CORPUS, random.Random(0)) is None  # names nothing


def test_variants_come_only_from_answerable_questions() -> None:
    made = fitting_data.variants("twowiki", ROWS, CORPUS, ["withheld", "half"])
    assert sorted(r["id"] for r in made) == ["a:half", "a:withheld", "b:half", "b:withheld"]
    assert {r["pool"] for r in made} == {"twowiki"}
