from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rag.core.types import Document
from rag.ingest.cleaning import clean, find_date, guess_title, is_boilerplate, iso_date, normalize
from rag.ingest.loading import load

from .conftest import SEEDS

BOILERPLATE = [
    "Newsletter Signup",
    "Click to comment",
    "Leave a Reply",
    "Connect with us",
    "Your email address will not be published. Required fields are marked *",
    "This site uses Akismet to reduce spam. Learn how your comment data is processed.",
    "Copyright © Brussels Post News",
    "You May Also Like",
    "Human skull found in Brussels park",  # an unrelated headline after the article
]


@pytest.fixture(scope="module")
def seeds() -> dict[str, Document]:
    return {d.id: d for d in load([SEEDS]) if isinstance(d, Document)}


def test_seed_boilerplate_is_removed(seeds: dict[str, Document]) -> None:
    text = "\n".join(d.text for d in seeds.values())
    for line in BOILERPLATE:
        assert line not in text, line


def test_seed_article_body_is_kept(seeds: dict[str, Document]) -> None:
    belgium = seeds["004_b9acc8e520016878"].text
    assert "The Belgian National Security Council approved" in belgium
    assert "which will be responsible for the implementation of the cybersecurity strategy." in belgium
    rwanda = seeds["002_26a8b3c79e444c21"].text
    assert "Mohammed bin Ali bin Mohammed Al Mannai" in rwanda
    assert "Dan Raywood, Senior Editor, Dark Reading" in rwanda  # the byline is content
    assert "1 Min Read" not in rwanda and "Alamy Stock Photo" not in rwanda
    # Every raw line of the first article that is not boilerplate survives.
    raw = (SEEDS / "000_309b2881ceff4657.txt").read_text(encoding="utf-8")
    for line in raw.splitlines():
        if line.strip():
            assert line.strip() in seeds["000_309b2881ceff4657"].text


def test_seed_titles_and_dates(seeds: dict[str, Document]) -> None:
    assert seeds["000_309b2881ceff4657"].title == "Qatar and Belgium Explore Enhanced Cybersecurity Collaboration"
    assert seeds["002_26a8b3c79e444c21"].title == "Qatar & Rwanda Partner to Boost Cybersecurity in Africa"
    assert seeds["000_309b2881ceff4657"].date == "2023-12-06"
    assert seeds["003_a8b633391ebd0f97"].date == "2024-02-23"


def test_tail_marker_only_cuts_the_second_half() -> None:
    story = "\n".join(f"Sentence {i} of the story is here." for i in range(10))
    early = clean("Leave a Reply\n" + story)
    assert "Sentence 9" in early  # near the top it is just a dropped line
    late = clean(story + "\nLeave a Reply\nUnrelated headline one\nUnrelated headline two")
    assert "Sentence 9" in late and "Unrelated headline" not in late


def test_content_mentioning_cookies_or_copyright_is_kept() -> None:
    sentence = "The court ruled that tracking cookies need consent, and copyright law was not at issue in the case brought by the regulator last year."
    assert not is_boilerplate(sentence)
    assert "tracking cookies" in clean(sentence)
    assert is_boilerplate("We use cookies to improve your experience. Accept all")


def test_normalize_whitespace_and_controls() -> None:
    assert normalize("a\r\n\r\n\r\n  b\t c\x00\x07 ") == "a\n\nb c"
    assert normalize("  \n\n ") == ""


def test_guess_title_prefers_a_heading_near_the_top() -> None:
    assert guess_title("Belgium\nA Real Headline Here\nBody text follows.") == "A Real Headline Here"
    long_first = "This is a long first line that reads like a sentence. It goes on and on for a while."
    assert guess_title(long_first) == "This is a long first line that reads like a sentence."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("date 2024-02-23 In a world", "2024-02-23"),
        ("The visit on December 6, 2023 was short.", "2023-12-06"),
        ("Signed on 5 March 2021 in Kigali.", "2021-03-05"),
        ("Published: 1 May 2020. The event of 2019-01-02.", "2020-05-01"),
        ("No date here, only the year 2025.", None),
        ("An impossible 2023-02-30 date.", None),
    ],
)
def test_find_date(text: str, expected: str | None) -> None:
    assert find_date(text) == expected


def test_a_date_at_the_top_comes_before_one_deeper_in_the_text() -> None:
    body = "\n".join(f"Paragraph {n} about the harbour." for n in range(8))
    # a dateline beats a labelled date further down (an update note, a footer)
    assert find_date(f"Harbour Reopens\nValletta, 5 March 2024 - The harbour reopened.\n{body}\nUpdated: 1 June 2024") == "2024-03-05"
    # nothing at the top: a labelled date, then the file's own date, then any date mentioned
    assert find_date(f"Harbour Reopens\n{body}\nThe treaty of 2019-01-02.\nPublished: 1 June 2020") == "2020-06-01"
    assert find_date(f"Harbour Reopens\n{body}\nThe treaty of 2019-01-02.", metadata="2021-07-08") == "2021-07-08"
    assert find_date(f"Harbour Reopens\n{body}\nThe treaty of 2019-01-02.") == "2019-01-02"
    assert find_date(f"Valletta, 5 March 2024\n{body}", metadata="2021-07-08") == "2024-03-05"


def test_iso_date_reads_metadata_dates_and_makes_up_no_day() -> None:
    assert iso_date(datetime(2024, 3, 5, 23, 59, tzinfo=timezone.utc)) == "2024-03-05"
    assert iso_date("2021-06-15T10:00:00Z") == "2021-06-15"
    assert [iso_date(v) for v in ("2021", "2021-06", "2021-02-30", "", None, 20210615)] == [None] * 6
