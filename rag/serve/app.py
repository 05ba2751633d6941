"""The chat window: the Gradio wiring over :class:`~rag.serve.service.ChatService`, and its launch
with the OpenAI API (:mod:`rag.serve.api`) and MCP (:mod:`rag.serve.mcp_server`) beside it.
Gradio is imported here only.

Example:
    >>> from rag.serve.app import launch
    >>> from rag.serve.service import ChatService
    >>> launch(ChatService.open(".rag/index"))      # http://127.0.0.1:7860, blocks  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.answer.assistant import MAX_QUESTION_CHARS, Answer
from rag.answer.conversation import Turn
from rag.answer.summary import Progress, Summary
from rag.core import defaults
from rag.core.cpu import limit_malloc_arenas
from rag.core.errors import NotFound, RagError
from rag.core.types import Scope
from rag.generate.registry import is_remote
from rag.ingest.loading import SUPPORTED_SUFFIXES
from rag.search.collections import Keys
from rag.search.retrieval import MODES, check_mode
from rag.serve.conversations import MAX_TITLE_CHARS, Conversation, ConversationStore, SavedTurn
from rag.serve.feedback import MAX_COMMENT_CHARS, record_feedback
from rag.serve.render import (
    EMPTY_SOURCES,
    escape_text,
    render_answer,
    render_citations,
    render_saved,
    render_sources,
    render_summary,
)
from rag.serve.service import MAX_UPLOAD_MB, UPLOAD_LIMITS, ChatService

if TYPE_CHECKING:
    import gradio


CSS = """
.rag-sources { font-size: 0.95em; }
.rag-source, .rag-hit { border-left: 3px solid #c7d2fe; padding: 2px 10px; margin: 8px 0; }
.rag-passage { white-space: pre-wrap; margin: 4px 0; }
mark.rag-quote { background: #fde68a; color: inherit; padding: 0 1px; }
.rag-unsupported { text-decoration: underline wavy #dc2626; }
.rag-refusal { color: #92400e; }
.rag-withheld { color: #6b7280; border-left: 3px solid #e5e7eb; padding-left: 8px; }
.rag-withheld summary { cursor: pointer; }
.rag-conflict { border-left: 3px solid #d97706; padding-left: 8px; }
.rag-note, .rag-searched { color: #6b7280; font-size: 0.9em; }
sup.rag-cite { color: #4338ca; font-weight: 600; }
"""


LOGIN_HELP = ("This server is closed with keys: log in with a collection's name and its key, "
              "or any other name and the server's key.")


def import_gradio() -> Any:
    """Import Gradio with its telemetry off (it reads the setting at import)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError:
        raise ImportError("the chat window needs gradio: pip install gradio (or pip install -e .)") from None
    return gradio


def build_app(service: ChatService) -> gradio.Blocks:
    """The Gradio app. Its API endpoints: ``/answer`` (question, model, k, mode, collection, and
    the scope: docs, since, until -> the answer as ``rag ask --json`` data), ``/chat`` (what the chat box calls), ``/feedback``,
    ``/documents`` (collection), ``/add_documents`` and ``/remove_document``; the saved
    conversations (:mod:`rag.serve.conversations`): ``/conversations`` (collection),
    ``/resume_conversation``, ``/rename_conversation``, ``/delete_conversation``,
    ``/export_markdown`` and ``/export_json``. A session reaches only the collections its login
    opens (:meth:`rag.search.collections.Keys.for_user`) and the conversations of the key it acts
    with (:meth:`rag.search.collections.Keys.for_login`); every handler checks the collection it is given."""
    gr = import_gradio()

    def takes_request(fn: Any) -> Any:
        """Gradio hands the request (and so the logged-in name) to a parameter annotated
        ``gr.Request``, found with typing.get_type_hints; this module's annotations are strings
        (``from __future__ import annotations``) naming a module it imports lazily, so the one
        annotation Gradio needs is set as the object itself (the others resolved as they are)."""
        fn.__annotations__ = {**typing.get_type_hints(fn), "request": gr.Request}
        return fn

    def opened(request: Any) -> list[str]:
        """The collections this session may open (all on an open server)."""
        return service.keys.for_user(getattr(request, "username", None), service.collections())

    def allowed(collection: str | None, request: Any) -> str:
        """The collection a request names (default: the first it may open), if it may open it."""
        names = opened(request)
        name = collection or (names[0] if names else service.collection)
        if name not in names:  # the same words whether it exists or not
            raise gr.Error(f"No collection '{name}' here.")
        return name

    def scope_of(docs: list[str] | None, since: str | None, until: str | None) -> Scope:
        """The documents and dates chosen beside the question (none chosen: everything)."""
        try:
            return Scope(tuple(docs or ()), since, until)
        except ValueError as e:
            raise gr.Error(str(e)) from None

    def scope_choices(rows: Any, chosen: list[str] | None) -> Any:
        """The document picker's choices after the documents table changed (another collection, a
        document added or removed): the table's ids, keeping those chosen that are still there."""
        ids = [str(i) for i in rows.iloc[:, 0] if str(i)] if rows is not None and len(rows) else []
        return gr.update(choices=ids, value=[d for d in chosen or [] if d in ids])

    @takes_request
    def chat(
        question: str, shown: list[dict[str, str]], turns: list[Turn], model: str, k: float, mode: str,
        collection: str, conversation: str | None = None, docs: list[str] | None = None, since: str = "",
        until: str = "", request: Any = None,
    ) -> Iterator[tuple[Any, ...]]:  # the Gradio updates of the chat's outputs, in order
        asked = (question or "").strip()
        if not asked:
            raise gr.Error("Type a question first.")
        name = allowed(collection, request)
        scope = scope_of(docs, since, until)
        shown = [*shown, {"role": "user", "content": escape_text(asked)}, {"role": "assistant", "content": "…"}]
        try:
            if not service.ready(model):
                # say so: loading a model takes seconds to a minute, longer on a busy machine
                loading = f"Loading the model {model}… the answer starts when it is ready."
                yield shown, shown, f'<div class="rag-sources"><p class="rag-note">{escape_text(loading)}</p></div>', \
                    turns, None, "", "", conversation
                service.load(model)
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise gr.Error(str(e)) from None
        searching = '<div class="rag-sources"><p class="rag-note">Searching…</p></div>'
        yield shown, shown, searching, turns, None, "", "", conversation
        text = ""
        try:
            response = service.respond(asked, model, int(k), check_mode(mode), history=turns, collection=name,
                                       scope=scope)
            searched = response.question
            for piece in response:
                text += piece
                shown[-1] = {"role": "assistant", "content": escape_text(text)}
                yield shown, shown, gr.skip(), turns, None, "", "", conversation
            answer = response.answer()
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise gr.Error(str(e)) from None
        shown[-1] = {"role": "assistant", "content": render_answer(answer, searched if searched != asked else None)}
        turns = [*turns, Turn(searched, answer.text, answer.refused)]
        conversation = save_turn(conversation, name, asked, answer, request)
        yield shown, shown, render_sources(answer), turns, (asked, answer), "", "", conversation

    @takes_request
    def answer(question: str, model: str = "", k: int = 0, mode: str = "", collection: str = "",
               docs: list[str] | None = None, since: str = "", until: str = "", request: Any = None) -> dict[str, Any]:
        """Answer one question (no conversation) from ``collection`` (default: the first this
        session opens), from the documents ``docs`` and the dates ``since`` to ``until`` (YYYY-MM-DD)
        when given; returns the ``rag ask --json`` data."""
        name = allowed(collection, request)
        scope = scope_of(docs, since, until)
        try:
            return service.ask(question, model or None, int(k) or None, check_mode(mode) if mode else None,
                               collection=name, scope=scope).to_dict()
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise gr.Error(str(e)) from None

    def feedback(rating: str, comment: str, last: tuple[str, Answer] | None) -> tuple[str, str]:
        if last is None:
            raise gr.Error("Ask a question first; feedback is about the last answer.")
        try:
            record_feedback(last[1], rating, comment, asked=last[0])
        except (ValueError, OSError) as e:
            raise gr.Error(str(e)) from None
        return f"Thanks: feedback ({rating}) saved for “{escape_text(last[0])}”.", ""

    @takes_request
    def documents(collection: str = "", request: Any = None) -> list[list[Any]]:
        return service.document_rows(allowed(collection, request))

    def doc_views(message: str, name: str) -> tuple[str, list[list[Any]], Any]:
        rows = service.document_rows(name)
        return escape_text(message), rows, gr.update(choices=[r[0] for r in rows], value=None)

    @takes_request
    def start(request: Any = None) -> tuple[Any, ...]:
        """When the page opens: the collections this session may open, and the first one's documents."""
        names = opened(request)
        first = names[0] if names else service.collection
        return (gr.update(choices=names, value=first, visible=len(names) > 1), *doc_views("", first))

    @takes_request
    def switch(collection: str, request: Any = None) -> tuple[Any, ...]:
        """Another collection: its documents, and a new conversation."""
        return (*doc_views("", allowed(collection, request)), [], [], [], None, EMPTY_SOURCES)

    @takes_request
    def add(files: list[str] | None, collection: str, request: Any = None) -> tuple[str, list[list[Any]], Any, None]:
        name = allowed(collection, request)
        try:
            message = service.add_files(files or [], name)
        except (ValueError, OSError) as e:
            raise gr.Error(str(e)) from None
        return (*doc_views(message, name), None)

    @takes_request
    def rescan(collection: str, request: Any = None) -> tuple[str, list[list[Any]], Any]:
        name = allowed(collection, request)
        try:
            return doc_views(service.rescan(name), name)
        except OSError as e:
            raise gr.Error(str(e)) from None

    @takes_request
    def remove(doc_id: str | None, collection: str, request: Any = None) -> tuple[str, list[list[Any]], Any]:
        name = allowed(collection, request)
        try:
            return doc_views(service.remove(doc_id or "", name), name)
        except (ValueError, KeyError) as e:
            raise gr.Error(str(e.args[0] if isinstance(e, KeyError) else e)) from None

    @takes_request
    def summarize(docs: list[str] | None, model: str, collection: str, request: Any = None) -> Iterator[str]:
        """A summary of the chosen document (or a comparison of two), streamed: the model's words and
        a progress line, then the checked summary (rag/answer/summary.py)."""
        name = allowed(collection, request)
        chosen = [d for d in docs or [] if d]
        if not 1 <= len(chosen) <= 2:
            raise gr.Error("choose one document to summarize, or two to compare")
        written, line = "", "Summarizing…"
        try:
            for item in service.summarize(chosen, model, name):
                if isinstance(item, Summary):
                    yield render_summary(item)
                    return
                if isinstance(item, Progress):
                    line = item.line()
                else:
                    written += item
                yield f'<p class="rag-note">{escape_text(line)}</p><p>{escape_text(written)}</p>'
        except RagError as e:
            raise gr.Error(str(e)) from None

    def load_model(model: str) -> Iterator[str]:
        if service.ready(model):
            yield f"{escape_text(model)} is loaded."
            return
        yield f"Loading {escape_text(model)}…"
        try:
            timings = service.load(model)
        except (ValueError, OSError, RuntimeError) as e:
            raise gr.Error(str(e)) from None
        yield f"{escape_text(model)} is loaded ({sum(timings.values()):.1f} s)."

    conversations = ConversationStore()  # conversations.sqlite3 in the data directory, made on first use
    exports = Path(tempfile.mkdtemp(prefix="rag-exports-"))  # the files the export buttons hand to the browser

    def session_key(request: Any) -> str | None:
        """The key this session acts with: its saved conversations are that key's."""
        return service.keys.for_login(getattr(request, "username", None))

    def save_turn(current: str | None, name: str, asked: str, answer: Answer, request: Any) -> str | None:
        """Keep the answered turn in the session's conversation, started by its first turn; its id."""
        key, turn = session_key(request), SavedTurn.of(asked, answer)
        try:
            if current is not None:
                with contextlib.suppress(NotFound):  # deleted meanwhile (in another tab): start a new one
                    conversations.append(current, turn, key)
                    return current
            current = conversations.create(name, asked, key).id
            conversations.append(current, turn, key)
        except (RagError, OSError) as e:
            gr.Warning(f"This answer could not be saved: {e}")  # it is shown all the same
        return current

    def listing(name: str, chosen: str | None, request: Any) -> Any:
        """The conversation list's update: ``name``'s conversations, newest first, ``chosen`` chosen."""
        try:
            found = conversations.list(name, session_key(request))
        except (RagError, OSError) as e:
            raise gr.Error(str(e)) from None
        return gr.update(choices=[(c.label(), c.id) for c in found],
                         value=chosen if chosen in {c.id for c in found} else None)

    def kept(conversation_id: str | None, name: str, request: Any) -> Conversation:
        if not conversation_id:
            raise gr.Error("Choose a conversation first.")
        try:
            return conversations.get(conversation_id, session_key(request), collection=name)
        except (RagError, OSError) as e:
            raise gr.Error(str(e)) from None

    @takes_request
    def saved_list(collection: str, current: str | None, request: Any = None) -> Any:
        return listing(allowed(collection, request), current, request)

    @takes_request
    def other_collection(collection: str, request: Any = None) -> tuple[Any, None]:
        """Another collection (or the first, when the page opens): its list, and a new conversation."""
        return listing(allowed(collection, request), None, request), None

    @takes_request
    def saved_conversations(collection: str = "", request: Any = None) -> list[dict[str, Any]]:
        """The session's saved conversations in ``collection`` (default: the first it opens), newest first."""
        name = allowed(collection, request)
        try:
            return [c.to_dict() for c in conversations.list(name, session_key(request))]
        except (RagError, OSError) as e:
            raise gr.Error(str(e)) from None

    @takes_request
    def resume(conversation_id: str | None, collection: str, request: Any = None) -> tuple[Any, ...]:
        """Show a saved conversation again and go on with it: follow-ups lean on its turns."""
        found = kept(conversation_id, allowed(collection, request), request)
        shown = [message for t in found.turns for message in (
            {"role": "user", "content": escape_text(t.asked)}, {"role": "assistant", "content": render_saved(t)})]
        sources = render_citations(found.turns[-1].citations) if found.turns else EMPTY_SOURCES
        return shown, shown, found.history(), found.id, None, sources, f"Resumed “{escape_text(found.title)}”."

    @takes_request
    def rename(conversation_id: str | None, title: str, collection: str, request: Any = None) -> tuple[Any, str, str]:
        name = allowed(collection, request)
        if not conversation_id:
            raise gr.Error("Choose a conversation first.")
        try:
            info = conversations.rename(conversation_id, title, session_key(request), collection=name)
        except (RagError, OSError) as e:
            raise gr.Error(str(e)) from None
        return listing(name, info.id, request), "", f"Renamed to “{escape_text(info.title)}”."

    @takes_request
    def delete(conversation_id: str | None, collection: str, current: str | None,
               request: Any = None) -> tuple[Any, ...]:
        """Delete a saved conversation; deleting the one in the chat starts a new one."""
        name = allowed(collection, request)
        if not conversation_id:
            raise gr.Error("Choose a conversation first.")
        try:
            info = conversations.delete(conversation_id, session_key(request), collection=name)
        except (RagError, OSError) as e:
            raise gr.Error(str(e)) from None
        message = f"Deleted “{escape_text(info.title)}”."
        if info.id == current:
            return listing(name, None, request), message, [], [], [], None, None, EMPTY_SOURCES
        return listing(name, current, request), message, *[gr.skip()] * 6

    def exporter(fmt: str) -> Any:
        @takes_request
        def export(conversation_id: str | None, collection: str, request: Any = None) -> str:
            """A saved conversation as a file to download (Markdown or JSON)."""
            name = allowed(collection, request)
            if not conversation_id:
                raise gr.Error("Choose a conversation first.")
            try:
                text = conversations.export(conversation_id, fmt, session_key(request), collection=name)
            except (RagError, OSError) as e:
                raise gr.Error(str(e)) from None
            # a folder per export: two sessions exporting at once never write one file
            path = Path(tempfile.mkdtemp(dir=exports)) / f"conversation-{conversation_id}.{fmt}"
            path.write_text(text, encoding="utf-8")
            return str(path)

        return export

    with gr.Blocks(title="rag: answers from your articles", analytics_enabled=False) as app:
        shown = gr.State([])
        turns = gr.State([])
        last = gr.State(None)
        with gr.Row(equal_height=True):
            gr.Markdown("## Answers from your articles, with sources you can check", elem_id="rag-title")
            # Filled when the page loads, with the collections this session may open (app.load).
            collection = gr.Dropdown([], value="", label="Collection", elem_id="rag-collection", allow_custom_value=True,
                                     visible=len(service.collections()) > 1, scale=0, min_width=220)
        with gr.Tab("Ask"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Chat", elem_id="rag-chat", height=480, sanitize_html=True, allow_tags=False,
                        latex_delimiters=[], feedback_options=None, buttons=["copy"],
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            placeholder="Ask a question about the articles…", show_label=False, scale=5,
                            elem_id="rag-question", max_length=MAX_QUESTION_CHARS, submit_btn=False,
                        )
                        ask = gr.Button("Ask", variant="primary", scale=1, elem_id="rag-ask")
                    with gr.Row():
                        # The question's scope. The picker is filled from the documents table
                        # whenever that changes (table.change below); none chosen: all documents. Ids
                        # it does not list are let through to the service, which names an unknown one
                        # (a client of /chat has no table, so its picker lists nothing).
                        scope_docs = gr.Dropdown([], value=[], multiselect=True, label="Only these documents",
                                                 scale=3, elem_id="rag-scope-docs", allow_custom_value=True)
                        # value "": a client of /chat may leave the dates out (Gradio's API makes an
                        # input without an initial value required)
                        since = gr.Textbox("", label="Since", placeholder="YYYY-MM-DD", max_length=10, scale=1,
                                           elem_id="rag-since")
                        until = gr.Textbox("", label="Until", placeholder="YYYY-MM-DD", max_length=10, scale=1,
                                           elem_id="rag-until")
                    with gr.Row():
                        # ✓ and ✗ are in DejaVu, which every Chromium install has; 👍/👎 need a
                        # colour-emoji font and showed as empty boxes without one.
                        up = gr.Button("✓ Good answer", size="sm", elem_id="rag-up")
                        down = gr.Button("✗ Bad answer", size="sm", elem_id="rag-down")
                        new = gr.Button("New conversation", size="sm")
                    comment = gr.Textbox(
                        label="Comment on the last answer (optional)", max_length=MAX_COMMENT_CHARS, lines=1,
                    )
                    status = gr.Markdown(elem_id="rag-status")
                    conversation = gr.State(None)  # the id of the saved conversation in the chat
                    with gr.Accordion("Past conversations", open=False, elem_id="rag-history"):
                        # Filled when the page loads and after each answer, with this collection's, newest first.
                        saved = gr.Dropdown([], value=None, label="Saved conversations (newest first)",
                                            elem_id="rag-saved", allow_custom_value=True)
                        with gr.Row():
                            resume_button = gr.Button("Resume", size="sm", elem_id="rag-resume")
                            export_md = gr.Button("Export Markdown", size="sm", elem_id="rag-export-md")
                            export_json = gr.Button("Export JSON", size="sm", elem_id="rag-export-json")
                            delete_button = gr.Button("Delete", size="sm", variant="stop", elem_id="rag-delete")
                        with gr.Row():
                            new_name = gr.Textbox(placeholder="A new name for the chosen conversation", show_label=False,
                                                  max_length=MAX_TITLE_CHARS, scale=4, elem_id="rag-new-name")
                            rename_button = gr.Button("Rename", size="sm", scale=1, elem_id="rag-rename")
                        exported = gr.File(label="Exported conversation", interactive=False, elem_id="rag-export")
                with gr.Column(scale=2):
                    sources = gr.HTML(EMPTY_SOURCES, elem_id="rag-sources", js_on_load=None)
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    model = gr.Dropdown(service.models(), value=service.model, label="Model")
                    k = gr.Slider(1, defaults.MAX_K, value=service.k, step=1, label="Passages to retrieve")
                    mode = gr.Radio(list(MODES), value=service.mode, label="Retrieval mode")
        with gr.Tab("Documents"):
            table = gr.Dataframe(
                value=None, headers=["id", "title", "date", "chunks"], interactive=False,
                label="Indexed documents", elem_id="rag-docs",
            )
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label=f"Add files. {UPLOAD_LIMITS}", file_count="multiple",
                        file_types=sorted(SUPPORTED_SUFFIXES),
                    )
                    add_button = gr.Button("Add to the index", variant="primary")
                    rescan_button = gr.Button("Re-scan the upload folder", size="sm")
                with gr.Column():
                    # Filled when the page loads (app.load below), not at build: Gradio puts a
                    # component's build-time choices in the API description it serves before login.
                    doc_id = gr.Dropdown([], value=None, label="Document", allow_custom_value=False)
                    remove_button = gr.Button("Remove from the index", variant="stop")
            with gr.Row():
                summary_docs = gr.Dropdown([], value=[], multiselect=True, max_choices=2, label="Summarize one document, or compare two",
                                           allow_custom_value=True, elem_id="rag-summary-docs")
                summarize_button = gr.Button("Summarize", elem_id="rag-summarize")
            summary_view = gr.HTML(elem_id="rag-summary")
            doc_status = gr.Markdown(elem_id="rag-doc-status")

        # Gradio runs this many answers at once; the service's own locks still hold a local model to one
        model_queue = {"concurrency_limit": service.concurrency if is_remote(service.model) else 1, "concurrency_id": "model"}
        chat_event = gr.on(
            [question.submit, ask.click], chat,
            inputs=[question, shown, turns, model, k, mode, collection, conversation, scope_docs, since, until],
            outputs=[chatbot, shown, sources, turns, last, question, status, conversation], api_name="chat", **model_queue,
        )
        chat_event.then(saved_list, [collection, conversation], saved, api_visibility="private")
        gr.api(answer, api_name="answer", **model_queue)
        up.click(lambda comment_text, answered: feedback("up", comment_text, answered), [comment, last], [status, comment], api_name="feedback_up")
        down.click(lambda comment_text, answered: feedback("down", comment_text, answered), [comment, last], [status, comment], api_name="feedback_down")
        new.click(
            lambda: ([], [], [], None, EMPTY_SOURCES, "", None),
            outputs=[chatbot, shown, turns, last, sources, status, conversation], api_visibility="private",
        )
        chatbot.clear(
            lambda: ([], [], None, EMPTY_SOURCES, None), outputs=[shown, turns, last, sources, conversation],
            api_visibility="private",
        )
        # Its own queue: a question asked meanwhile runs and says that the model is loading
        # (ChatService's lock makes it wait for the load).
        model.change(load_model, model, status, api_name="load_model", concurrency_limit=1, concurrency_id="load")
        gr.api(documents, api_name="documents")
        app.load(start, None, [collection, doc_status, table, doc_id], api_visibility="private")
        collection.input(switch, collection, [doc_status, table, doc_id, chatbot, shown, turns, last, sources],
                         api_visibility="private")
        add_button.click(add, [files, collection], [doc_status, table, doc_id, files], api_name="add_documents", **model_queue)
        remove_button.click(remove, [doc_id, collection], [doc_status, table, doc_id], api_name="remove_document", **model_queue)
        rescan_button.click(rescan, collection, [doc_status, table, doc_id], api_name="rescan_uploads", **model_queue)
        table.change(scope_choices, [table, scope_docs], scope_docs, api_visibility="private")
        table.change(scope_choices, [table, summary_docs], summary_docs, api_visibility="private")
        summarize_button.click(summarize, [summary_docs, model, collection], summary_view, api_name="summarize", **model_queue)
        # The saved conversations: the list follows the collection (set when the page loads, or switched).
        collection.change(other_collection, collection, [saved, conversation], api_visibility="private")
        gr.api(saved_conversations, api_name="conversations")
        resume_button.click(resume, [saved, collection], [chatbot, shown, turns, conversation, last, sources, status],
                            api_name="resume_conversation")
        rename_button.click(rename, [saved, new_name, collection], [saved, new_name, status], api_name="rename_conversation")
        delete_button.click(delete, [saved, collection, conversation],
                            [saved, status, chatbot, shown, turns, conversation, last, sources], api_name="delete_conversation")
        export_md.click(exporter("md"), [saved, collection], exported, api_name="export_markdown")
        export_json.click(exporter("json"), [saved, collection], exported, api_name="export_json")
    return app


def theme(gr: Any) -> Any:
    """Gradio's default theme with its bundled Source Sans Pro at 400 and 700: its SemiBold (600)
    file is a 5 KB subset without "A" or "B", so bold text drew those letters in another font
    (the title's "A"); asked for 600, the browser now takes the complete Bold file."""
    font = gr.themes.LocalFont("Source Sans Pro", weights=(400, 700))
    return gr.themes.Default(font=[font, "ui-sans-serif", "system-ui", "sans-serif"])


def _key_check(service: ChatService) -> Any:
    """Gradio's login check (:meth:`rag.search.collections.Keys.login`: a collection's name and its key,
    or any other name and the server key; compared in constant time)."""

    def check(user: str, password: str) -> bool:
        return service.keys.login(user, password, service.collections())

    return check


def launch(
    service: ChatService, host: str = defaults.HOST, port: int = defaults.PORT, block: bool = True,
    api_key: str | None = None,
) -> tuple[gradio.Blocks, str]:
    """Serve the app at ``http://host:port`` (no share link, no telemetry), the OpenAI-compatible
    API at ``/v1`` beside it (:mod:`rag.serve.api`) and MCP at ``/mcp`` (:mod:`rag.serve.mcp_server`, when the
    ``mcp`` SDK is installed); returns the app and its URL.

    With keys (``service.keys``; ``api_key`` is short for a server key) everything the server
    offers is closed without one: the chat window asks for it on a login page (a collection's
    name and its key, or any other name and the server key; ``gradio_client`` passes it as
    ``auth=(name, key)``), so do Gradio's own endpoints (answers, documents, uploads), and
    ``/v1`` and ``/mcp`` take it as a Bearer token. Each sees only the collections its key opens.

    With ``block=False`` it returns at once (tests); call ``app.close()`` to stop it.
    """
    from rag.serve.api import mount

    if api_key:
        service.keys = Keys(api_key, service.keys.collections)
    limit_malloc_arenas()  # a long-running server: memory freed in one answer's thread is reused by the next
    gr = import_gradio()
    app = build_app(service)
    app.queue(max_size=64)
    app.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=True,
        max_file_size=f"{MAX_UPLOAD_MB}mb", footer_links=["api"], run_history=False, ssr_mode=False,
        mcp_server=False, enable_monitoring=False, show_error=True, quiet=not block, css=CSS,
        theme=theme(gr), auth=_key_check(service) if service.keys.closed else None,
        auth_message=LOGIN_HELP,
    )
    mount(app.server_app, service)
    if importlib.util.find_spec("mcp") is not None:  # the MCP SDK is optional for the chat window
        from rag.serve.mcp_server import HttpEndpoint

        # an ASGI app as a route's endpoint: Starlette hands it the request as is (typed for functions only)
        app.server_app.add_route("/mcp", HttpEndpoint(service, host))  # type: ignore[arg-type]
    if block:
        app.block_thread()
    return app, app.local_url or f"http://{host}:{port}/"
