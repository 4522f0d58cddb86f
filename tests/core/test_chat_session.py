"""The chat rules without Qt and without a model: what each action does to the conversation."""

from __future__ import annotations

import pytest

from desktop_app.core.chat.session import NEW_TITLE, SAVE_INTERVAL_S, ChatSession, ModelStamp
from desktop_app.core.chat.store import Conversation, Message

STATS = {"prompt_tokens": 30, "completion_tokens": 12, "ttft_s": 0.1, "tokens_per_s": 50.0, "stopped": False}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def session(clock):
    return ChatSession(clock=clock)


def _answer(session: ChatSession, request: int, *pieces: str, stats=STATS) -> None:
    session.begin(request, None)
    for p in pieces:
        session.add_text(request, p)
    session.finish(request, dict(stats))


def test_sending_starts_a_titled_conversation_and_asks_with_the_system_prompt(session):
    asked = session.send("  What is GGUF?\nSecond line  ", system_prompt="Be brief.")
    conv = session.conv
    assert conv.title == "What is GGUF?" and conv.system_prompt == "Be brief."
    assert asked == [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "What is GGUF?\nSecond line"}]  # fmt: skip
    assert [m.role for m in conv.messages] == ["user", "assistant"] and conv.messages[1].content == ""
    assert session.answering and session.answer_index == 1
    assert session.send("another") is None  # one answer at a time
    long = ChatSession()
    long.send("x" * 200)
    assert long.conv.title == "x" * 60


def test_nothing_to_send(session):
    assert session.send("   \n ") is None and session.conv is None


def test_the_stream_lands_in_the_answer_and_its_figures_are_kept(session, clock):
    session.send("Hi")
    stamp = ModelStamp("/m/a.gguf", "Q4_1", "f" * 32, "0.3.36", {"n_ctx": 4096, "temperature": 0.0})
    session.begin(7, stamp)
    assert session.add_text(7, "Hel") is False  # not yet a second since the start
    assert session.add_text(8, "IGNORED") is False  # another request's tokens
    clock.now += SAVE_INTERVAL_S + 0.01
    assert session.add_text(7, "lo") is True  # a save is due: a crash loses at most a second
    saved, first = session.snapshot()
    assert first and saved.messages[1].content == "Hello"  # what was streamed so far is what gets written
    assert session.add_text(7, "!") is False  # the snapshot was the save
    assert session.finish(8, STATS) is False
    assert session.finish(7, STATS) is True and not session.answering
    conv = session.conv
    assert conv.messages[1].content == "Hello!" and conv.messages[1].stat == STATS
    assert session.tokens_used == 42 and conv.settings["tokens_used"] == 42 and conv.settings["n_ctx"] == 4096
    assert (conv.model_path, conv.quant, conv.model_fingerprint, conv.llama_cpp_version) == (
        "/m/a.gguf", "Q4_1", "f" * 32, "0.3.36")  # fmt: skip


def test_regenerate_keeps_the_earlier_answers_and_choosing_flips_between_them(session):
    session.send("Say hello.")
    _answer(session, 1, "Hello")
    asked = session.regenerate()
    assert asked == [{"role": "user", "content": "Say hello."}]  # the earlier answer is not in the prompt
    _answer(session, 2, "Hi there")
    msg = session.conv.messages[1]
    assert msg.variants == ["Hello", "Hi there"] and msg.chosen == 1 and len(msg.stats) == 2
    assert session.choose(1, -1) and msg.content == "Hello"
    assert session.choose(1, -1) and msg.content == "Hi there"  # wraps around
    assert not session.choose(0, 1) and not session.choose(9, 1)  # one variant; no such message
    session.regenerate()
    assert not session.choose(1, 1)  # not while an answer is being written


def test_regenerate_answers_a_question_left_without_an_answer(session):
    session.send("Are you there?")
    session.abandon()  # the model did not load: the question stays, the empty answer goes
    assert [m.role for m in session.conv.messages] == ["user"] and not session.answering
    assert session.regenerate() == [{"role": "user", "content": "Are you there?"}]
    assert [m.role for m in session.conv.messages] == ["user", "assistant"]


def test_abandoning_a_regeneration_drops_only_the_empty_variant(session):
    session.send("Q")
    _answer(session, 1, "A1")
    session.regenerate()
    session.abandon()
    msg = session.conv.messages[1]
    assert msg.variants == ["A1"] and msg.chosen == 0 and msg.stats == [STATS]


def test_edit_and_resend_continues_from_the_edited_message(session):
    session.send("Name a fruit.")
    _answer(session, 1, "Apple")
    session.send("Another.")
    _answer(session, 2, "Pear")
    assert session.start_edit(1) is None  # answers are not edited
    assert session.start_edit(0) == "Name a fruit."
    asked = session.send("Name a vegetable.")
    assert asked == [{"role": "user", "content": "Name a vegetable."}]
    assert [m.content for m in session.conv.messages] == ["Name a vegetable.", ""]
    assert session.conv.title == "Name a fruit."  # the title stays once given


def test_a_turn_the_context_cannot_hold_puts_everything_back(session):
    session.n_ctx = 4096
    session.send("Name a fruit.")
    _answer(session, 1, "Apple")
    before = [(m.role, list(m.variants)) for m in session.conv.messages]
    session.start_edit(0)
    session.send("A much longer question")
    session.begin(2, None)
    message, typed = session.refused(2, prompt_tokens=3900, reserve=1024)
    assert typed == "A much longer question"  # for the input: nothing typed is lost
    assert "3,900 tokens" in message and "1,024" in message and "4,096-token context" in message
    assert [(m.role, list(m.variants)) for m in session.conv.messages] == before and not session.answering
    assert session.start_edit(0) == "Name a fruit." and session.editing == 0
    session.regenerate()
    session.begin(3, None)
    session.refused(3, prompt_tokens=4000, reserve=512)
    assert session.conv.messages[1].variants == ["Apple"]  # a refused regeneration adds no empty answer
    assert session.refused(99, 1, 1) == ("", "")  # not the turn being written


def test_failures_keep_what_was_written_and_say_it_plainly(session):
    session.n_ctx = 2048
    session.send("Tell a story.")
    session.begin(4, None)
    session.add_text(4, "Once upon")
    said = session.fail(4, "ValueError: Requested tokens (5000) exceed context window of 2048")
    assert "no longer fits in the 2,048-token context" in said and not session.answering
    assert session.conv.messages[1].content == "Once upon"
    session.regenerate()
    session.begin(5, None)
    session.add_text(5, "Long ago")
    session.engine_died()
    assert session.conv.messages[1].variants == ["Once upon", "Long ago"] and not session.answering
    assert session.fail(None, "RuntimeError: boom") == "RuntimeError: boom"


def test_opening_a_saved_conversation(session):
    saved = Conversation(5, "Old", "Sys", settings={"tokens_used": 321}, messages=[Message("user", ["hi"])])
    assert session.open(saved) and session.tokens_used == 321 and session.conv is saved
    session.send("more")
    assert not session.open(Conversation(6, "Other"))  # not while an answer is being written
    assert session.conv is saved


def test_snapshots_are_copies_and_the_first_gives_the_id(session):
    assert session.snapshot() is None
    session.new()
    assert session.conv.title == NEW_TITLE
    copy1, first = session.snapshot()
    assert first and copy1.id is not None and copy1.id == session.conv.id and session.conv.created_at > 0
    copy2, first = session.snapshot()
    assert not first and copy2.id == copy1.id
    session.send("hi")
    assert copy2.messages == []  # the copy does not grow with the conversation
    assert session.set_system_prompt("Be kind.") and not session.set_system_prompt("Be kind.")
