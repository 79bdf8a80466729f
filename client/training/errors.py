"""Errors raised by training; every message is one sentence a user can act on.

TrainingError
├── ShardTooSmall        not enough records to train and evaluate
├── TaskMismatch         the Datanet's task does not fit the base model, or records lack fields
├── BaseModelUnavailable the base model's package is not installed, or its files do not match the pin
├── AdapterNotFound      no adapter with that id
└── JobFailed            the training process failed (the log has the traceback)
"""

from __future__ import annotations

from client.errors import ClientError


class TrainingError(ClientError):
    pass


class ShardTooSmall(TrainingError):
    exit_code = 4


class TaskMismatch(TrainingError):
    exit_code = 4


class BaseModelUnavailable(TrainingError):
    pass


class AdapterNotFound(TrainingError):
    pass


class JobFailed(TrainingError):
    pass
