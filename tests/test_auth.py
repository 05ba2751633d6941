"""One key closes everything the server offers: the chat window (Gradio's login), Gradio's
endpoints through gradio_client, and /v1 (a Bearer token); rag serve refuses to listen beyond
this machine without one (issue 30)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client  # noqa: E402

from rag.serve.app import launch  # noqa: E402
from rag.serve.service import ChatService

from .conftest import free_port, make_service, run_cli  # noqa: E402

KEY = "correct horse battery staple"
BAKERY = "Which bakery won the sourdough prize?"


@pytest.fixture
def url(tmp_path: Path, tiny_corpus: Path) -> Iterator[str]:
    service: ChatService = make_service(tmp_path, tiny_corpus)
    app, url = launch(service, port=free_port(), block=False, api_key=KEY)
    try:
        yield url.rstrip("/")
    finally:
        app.close()


def test_gradio_clients_need_the_key(url: str) -> None:
    answer = Client(url, auth=("anyone", KEY), verbose=False).predict(BAKERY, api_name="/answer")
    assert answer["citations"][0]["doc_id"] == "bakery"
    with pytest.raises(Exception):  # noqa: B017,PT011 - gradio_client raises its own errors for a closed app
        Client(url, verbose=False).predict(BAKERY, api_name="/answer")
    with pytest.raises(Exception):  # noqa: B017,PT011
        Client(url, auth=("anyone", "wrong"), verbose=False).predict(BAKERY, api_name="/answer")


def test_the_window_and_its_endpoints_say_nothing_without_the_key(url: str) -> None:
    with urllib.request.urlopen(f"{url}/") as page:
        body = page.read().decode()
    assert "bakery" not in body.lower()  # the login page, not the app
    for path in ("/config", "/gradio_api/info"):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"{url}{path}")
        assert error.value.code in (401, 403)


def test_v1_takes_the_same_key_as_a_bearer_token(url: str) -> None:
    body = json.dumps({"model": "rag", "messages": [{"role": "user", "content": BAKERY}]}).encode()

    def post(key: str | None) -> int:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{url}/v1/chat/completions", data=body, headers=headers)) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert post(KEY) == 200 and post(None) == 401 and post("wrong") == 401


def test_serve_beyond_this_machine_needs_a_key_or_no_auth(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RAG_API_KEY", raising=False)
    code, _, err = run_cli(capsys, "serve", "--host", "0.0.0.0", "--index-dir", str(tmp_path / "none"))
    assert code == 1 and "--api-key" in err and "--no-auth" in err and len(err.strip().splitlines()) == 1
