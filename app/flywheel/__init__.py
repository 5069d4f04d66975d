"""The data flywheel: feedback -> dataset snapshot -> fine-tune -> evaluate -> register -> canary
-> promote or roll back. Plain functions in `steps.py`; Celery tasks in `tasks.py` wrap them."""
