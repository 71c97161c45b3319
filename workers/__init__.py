"""Pipeline steps that join the database and ``ml``, and the Celery tasks that wrap them."""
