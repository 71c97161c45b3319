"""Pure machine-learning code of matplat: crystal graphs, the CGNN model, data and training.

Nothing here imports the database, Celery or click: functions take arrays and return arrays.
"""
