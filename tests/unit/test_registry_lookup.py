"""training/register.py ``champion_lookup``: a champion withdrawn is told apart from a registry that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    ENDPOINT_NOT_FOUND,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

import training.register as register
from cascade_radar.config import Settings


def raised_by_mlflow(message: str, code: int, cause: BaseException | None = None) -> MlflowException:
    """The exception as MLflow's store raises it (its sqlite session wraps driver errors, ``from`` the original)."""
    exc = MlflowException(message, code)
    exc.__cause__ = cause
    return exc


LOCKED = sqlalchemy.exc.OperationalError("SELECT ...", {}, Exception("database is locked"))
CORRUPT = sqlalchemy.exc.DatabaseError("SELECT ...", {}, Exception("file is not a database"))


@pytest.mark.parametrize(("error", "readable", "why"), [
    (raised_by_mlflow("Registered model alias champion not found.", INVALID_PARAMETER_VALUE), True,
     "the 'champion' alias of cascade-radar-btc was removed"),
    (raised_by_mlflow("Registered Model with name=cascade-radar-btc not found", RESOURCE_DOES_NOT_EXIST), True,
     "the model cascade-radar-btc (or its champion version) was deleted from the registry"),
    (raised_by_mlflow("(sqlalchemy.exc.OperationalError) database is locked", TEMPORARILY_UNAVAILABLE, LOCKED), False,
     "the registry cannot be read (MlflowException from OperationalError)"),
    (raised_by_mlflow("file is not a database", INVALID_PARAMETER_VALUE, CORRUPT), False,
     "the registry cannot be read (MlflowException from DatabaseError)"),
    (CORRUPT, False, "the registry cannot be read (DatabaseError)"),
    # a proxy's bare 404 page names no model and no alias: no evidence the champion is gone
    (raised_by_mlflow("API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error code 404 != 200. Response "
                      "body: 'not found'", ENDPOINT_NOT_FOUND), False, "the registry cannot be read (MlflowException)"),
    (ConnectionRefusedError("http://user:secret@registry:5000"), False, "the registry cannot be read (ConnectionRefusedError)"),
])
def test_withdrawn_only_when_the_registry_was_read_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException,
                                                               readable: bool, why: str) -> None:
    class Client:
        def get_model_version_by_alias(self, name: str, alias: str) -> None:
            raise error

    (tmp_path / "mlflow.db").touch()  # the store's file is there; what reading it raises is the question
    monkeypatch.setattr(register, "MlflowClient", Client)
    found = register.champion_lookup(Settings(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert (found.version, found.readable, found.withdrawn, found.why) == (None, readable, readable, why)
    assert "secret" not in found.why  # an error's text can carry credentials: only its kind is told


def test_a_store_gone_from_its_folder_is_unreadable_not_withdrawn(tmp_path: Path) -> None:
    found = register.champion_lookup(Settings(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'moved.db'}"))
    assert (found.version, found.readable, found.withdrawn) == (None, False, False)
    assert found.why == "the MLflow store moved.db is gone from its folder"
