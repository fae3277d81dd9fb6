"""Secrets: no part of 8 characters or more of a key survives redaction, wherever it is cut."""

from agents._redact import Redactor, redact

KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


def fragments(text, key=KEY):
    return [key[i:i + 8] for i in range(len(key) - 7) if key[i:i + 8] in text]


def test_whole_masked_and_cut_keys_leave_no_fragment():
    r = Redactor({"OPENAI_API_KEY": KEY})
    for text in (f"key {KEY} end", f"masked {KEY[:12]}****************{KEY[-4:]}.", f"cut at the end: {KEY[:23]}",
                 f"{KEY[-9:]} starts the text", f"twice {KEY} and {KEY}", f"touching {KEY[:10]}{KEY[5:20]}"):
        out = r(text)
        assert not fragments(out), (text, out)
        assert "<OPENAI_API_KEY>" in out
    assert r("nothing to hide here") == "nothing to hide here"
    assert r(KEY[:7]) == KEY[:7]  # shorter than a fragment: not a leak


def test_redact_before_truncate_leaves_nothing_at_the_cut():
    message = "x" * 480 + KEY + " more"
    assert fragments(message[:500])  # what cutting first would have written
    assert not fragments(Redactor({"K": KEY})(message)[:500])


def test_environment_secrets_are_found_by_name(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", KEY)
    assert not fragments(redact(f"error: {KEY[3:40]}"))
