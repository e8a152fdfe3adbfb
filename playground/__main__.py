"""``python -m playground``: the Bot API stand-in and its chat page, with no bot attached.

Start your bot separately with the printed base URLs (and the same token) to talk to it from the page.
"""

from __future__ import annotations

import argparse
import logging

from playground.botapi import DEFAULT_BOT_USERNAME, DEFAULT_HOST
from playground.serve import DEFAULT_PORT, DEFAULT_TOKEN, run_playground


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m playground", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the token your bot will use")
    parser.add_argument("--bot-username", default=DEFAULT_BOT_USERNAME)
    parser.add_argument(
        "--privacy-mode", action="store_true", help="deliver only commands, mentions and replies from groups"
    )
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_playground(
        token=args.token,
        host=args.host,
        port=args.port,
        bot_username=args.bot_username,
        privacy_mode=args.privacy_mode,
    )


if __name__ == "__main__":
    main()
