"""Webhooks (being written): ``enqueue`` writes delivery rows for matching subscriptions."""


def enqueue(payloads: list[dict]) -> None:
    return None
