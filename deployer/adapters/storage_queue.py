"""The request queue on Azure Queue Storage.

Messages are base64-encoded, as the Functions queue trigger expects by default
(``messageEncoding: base64``); ``deployer dev`` decodes them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

from deployer.adapters.storage_errors import storage_errors


@dataclass(frozen=True)
class ReceivedMessage:
    id: str
    pop_receipt: str
    body: bytes
    dequeue_count: int
    inserted_on: object = None


def queue_client(connection: str, name: str, **options: Any) -> QueueClient:
    return QueueClient.from_connection_string(
        connection, name, message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(), **options)


def identity_queue_client(account_url: str, name: str, credential: Any, **options: Any) -> QueueClient:
    """The same queue reached with a token credential (identity-only storage)."""
    return QueueClient(account_url, name, credential=credential,
                       message_encode_policy=BinaryBase64EncodePolicy(),
                       message_decode_policy=BinaryBase64DecodePolicy(), **options)


class StorageQueue:
    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self._where = client.url.rsplit("/", 1)[0]
        self._ready = False

    @property
    def name(self) -> str:
        return str(self._client.queue_name)

    def _ensure(self) -> QueueClient:
        if not self._ready:
            with storage_errors(f"create queue {self.name}", self._where):
                try:
                    self._client.create_queue()
                except ResourceExistsError:
                    pass
            self._ready = True
        return self._client

    def send(self, body: bytes, *, delay_seconds: int = 0) -> None:
        """``delay_seconds``: the message stays invisible this long (a delayed continuation)."""
        client = self._ensure()
        with storage_errors(f"enqueue to {self.name}", self._where):
            client.send_message(body, visibility_timeout=delay_seconds or None)

    def receive(self, *, visibility_timeout: int, max_messages: int = 4) -> list[ReceivedMessage]:
        client = self._ensure()
        with storage_errors(f"dequeue from {self.name}", self._where):
            return [ReceivedMessage(m.id, m.pop_receipt or "", m.content, m.dequeue_count or 1,
                                    m.inserted_on)
                    for m in client.receive_messages(messages_per_page=max_messages,
                                                     visibility_timeout=visibility_timeout,
                                                     max_messages=max_messages)]

    def hide(self, message: ReceivedMessage, seconds: int) -> ReceivedMessage:
        """Keep (or make) the message invisible for ``seconds``; returns it with its new receipt."""
        client = self._ensure()
        with storage_errors(f"update message in {self.name}", self._where):
            updated = client.update_message(message.id, message.pop_receipt,
                                            visibility_timeout=seconds)
        return ReceivedMessage(message.id, updated.pop_receipt or "", message.body,
                               message.dequeue_count, message.inserted_on)

    def delete(self, message: ReceivedMessage) -> None:
        client = self._ensure()
        with storage_errors(f"delete message from {self.name}", self._where):
            client.delete_message(message.id, message.pop_receipt)
