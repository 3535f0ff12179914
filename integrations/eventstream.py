"""The event stream (being written): ``enqueue`` writes rows for the configured streams."""


def enqueue(payloads: list[dict]) -> None:
    return None
