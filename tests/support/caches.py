"""Every cache this process keeps between calls, and how to empty it: one test's rows never answer the next.

Each entry is what production keeps per process (a TTL'd list, a memoised key, the rules snapshot, a set of
running hosts...). Add a new per-process cache here when you write one.
"""


def reset_process_caches() -> None:
    from accesscontrol import events, photos, security, snapshot
    from core import hosting, vault
    from devices import carddata, cards, jobwake, recorder
    from integrations import webhooks
    from integrations.eventstream import service as eventstream
    from integrations.webhooks import wakeup

    snapshot._store = None  # the rules snapshot, built from the database
    security._purged_at = None  # the hourly purge of old login attempts
    cards._cached_key = None  # the site card key, unsealed
    vault._aead.cache_clear()  # the AEAD of a master key
    carddata.derive_key.cache_clear()
    carddata._rights_aead.cache_clear()
    events._cached_partition.partitions.clear()  # access point -> partition, for payloads of batches
    recorder._name_cardholders.__self__.names.clear()  # cardholder names, for audit rows
    photos.thumbnails.clear()  # cardholder thumbnail URLs, for the monitor's items
    webhooks.forget_subscriptions()
    eventstream.forget_streams()
    wakeup._wakers.clear()  # deliverers of embedded services this process runs
    jobwake._wakers.clear()  # bridges of this process to wake when a job is queued
    hosting._running.clear()  # hosted services, for the signal handler
    hosting._shutting_down = False
