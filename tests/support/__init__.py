"""What the tests share: waiting on a condition, free ports, real Celery workers, process caches, fixtures."""
