"""nbsteps' own displays (a step cell's status line, its output slots, their updates) are
published without IPython's formatters where those would give the bundle back as it is
(nbsteps.ipython.display.publish, issue 26 target 0): the message is the one
``display(Bundle(data))`` sends, in a real InteractiveShell, for bundles with and without
``text/plain``, with metadata, display ids and updates, and with a formatter the user
registered for every object."""

from __future__ import annotations

import pytest

from nbsteps.ipython.display import Bundle, publish

BUNDLES = [
    ({"text/plain": "✓ a completed", "text/html": "<div>✓ a completed</div>"}, None),
    ({"text/plain": ""}, None),
    (
        {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"},
        {"image/png": {"width": 4}},
    ),
    ({"text/html": "<b>no plain text</b>"}, None),  # the formatters add the Bundle's repr: kept
]


@pytest.fixture
def published(shell):
    """Every (data, metadata, kwargs) the shell's display publisher is given."""
    pub = shell.display_pub
    sent: list = []
    before = pub.publish

    def record(data, metadata=None, **kwargs):
        sent.append((data, metadata, kwargs))

    pub.publish = record
    try:
        yield sent
    finally:
        pub.publish = before


def _through_formatters(sent, data, metadata, **kw):
    from IPython.display import display

    display(Bundle(data), metadata=metadata, **kw)
    return sent.pop()


@pytest.mark.parametrize("data,metadata", BUNDLES)
@pytest.mark.parametrize(
    "kw", [{}, {"display_id": "nbsteps-step-x"}, {"display_id": "nbsteps-step-x", "update": True}]
)
def test_publish_sends_what_display_of_a_bundle_sends(published, data, metadata, kw):
    expected = _through_formatters(published, data, metadata, **kw)
    publish(data, metadata=metadata, **kw)
    got = published.pop()
    assert got[0] == expected[0] and (got[1] or {}) == (expected[1] or {}) and got[2] == expected[2]
    assert "text/plain" in got[0]


def test_a_formatter_for_every_object_still_formats_the_bundle(shell, published):
    html = shell.display_formatter.formatters["text/html"]
    html.for_type(object, lambda obj: "<i>every object</i>")
    try:
        data = {"text/plain": "x", "text/html": "<b>x</b>"}
        expected = _through_formatters(published, data, None)
        publish(data)
        got = published.pop()
    finally:
        html.pop(object)
    assert got[0] == expected[0] and got[0]["text/html"] == "<i>every object</i>"
