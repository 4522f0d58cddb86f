"""The Chat page: a view of a :class:`~desktop_app.core.chat.session.ChatSession`.

``page`` wires the views to the session and the engine and loads models; ``conversations`` is the
list on the left; ``transcript`` renders the conversation and its links; ``settings_panel`` holds
the sampling and load settings on the right.
"""

from desktop_app.ui.pages.chat.page import ChatPage

__all__ = ["ChatPage"]
