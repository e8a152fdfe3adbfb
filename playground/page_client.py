"""The chat page's HTTP interface, from Python: what the page does when a person sends a photo or reads a chat.

For scripts that drive a running playground from outside its process (`wanderlens up`'s tests, bench.chaos).
Standard library only.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PageClient:
    port: int
    host: str = "127.0.0.1"
    timeout_s: float = 30.0

    def send_photo(self, chat_id: int, user_id: int, photo: bytes) -> int:
        """As when a photo is picked on the page; returns the photo's message id."""
        boundary = f"wanderlens-{uuid.uuid4().hex}"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="user_id"\r\n\r\n{user_id}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="photo.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + photo
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}/api/chats/{chat_id}/send",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return int(json.loads(response.read())["message_id"])

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Every message of the chat, as the page shows them (oldest first)."""
        url = f"http://{self.host}:{self.port}/api/chats/{chat_id}/messages?since=0"
        with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
            return list(json.loads(response.read())["messages"])
