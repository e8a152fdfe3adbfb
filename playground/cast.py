"""The playground's default cast: three travellers, their private chats and a shared group."""

from __future__ import annotations

from dataclasses import dataclass

from playground.botapi import BotApiStandIn
from playground.models import SimChat, SimUser

GROUP_CHAT_ID = -1001234567890
GROUP_TITLE = "Trip planning"


@dataclass(frozen=True)
class Cast:
    """Who is in the playground: users, each one's private chat with the bot, and the group."""

    users: tuple[SimUser, ...]
    private_chats: tuple[SimChat, ...]
    group: SimChat


def add_demo_cast(stand_in: BotApiStandIn) -> Cast:
    """Alice, Bob and Chloe, each with a private chat, all three in the group "Trip planning"."""
    users = (
        stand_in.user(101, "Alice", "alice_travels"),
        stand_in.user(102, "Bob", "bob_on_the_road"),
        stand_in.user(103, "Chloe", None),
    )
    private_chats = tuple(stand_in.private_chat(user) for user in users)
    group = stand_in.group_chat(GROUP_CHAT_ID, GROUP_TITLE, list(users))
    return Cast(users, private_chats, group)
