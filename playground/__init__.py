"""The local playground: a Telegram Bot API stand-in plus a chat page, so the bot runs without Telegram.

- ``playground.botapi.BotApiStandIn``: the server an unmodified python-telegram-bot ``Application`` polls,
  with methods to play users (text, photos, documents, stickers, shared locations, button presses) and read
  back what the bot sent: texts, photos, albums, documents, venues and locations, inline and reply keyboards
  (used by tests and the page).
- ``playground.web``: the chat page and its JSON API, on the same server.
- ``playground.serve``: ``serve_playground()`` / ``run_playground()``; also ``python -m playground``.

Nothing here is imported by ``bot/``; the page is static files in ``playground/static/``.
"""
