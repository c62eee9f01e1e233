"""The scoring endpoint on the package's materialised online store and model: a known flight
gets its online features and a prediction; an unseen aircraft or route is scored with the
model's cold-start defaults and flagged; bad input is refused."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from fastapi.testclient import TestClient

from assets.ml import artifacts
from assets.ml.feature_definitions import MODEL_FEATURES, VIEWS_BY_NAME
from assets.ml.serving_api import create_app
from tests.ml.conftest import MlDomain

pytestmark = pytest.mark.slow
AIRCRAFT = VIEWS_BY_NAME["aircraft_delay"].model_features


@pytest.fixture(scope="module")
def client(ml_domain: MlDomain) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


def _known_flight(ml_domain: MlDomain) -> dict[str, object]:
    """A Jan 4 flight whose aircraft and route have online values."""
    return ml_domain.table(
        """
        SELECT f.flight_id, f.flight_origin, f.flight_tailnum, a.aircraft_last_dep_delay_min
        FROM ml_serving.flight_schedule f
        JOIN (SELECT * FROM ml_serving.aircraft_delay
              QUALIFY row_number() OVER (PARTITION BY tailnum ORDER BY event_timestamp DESC) = 1) a
          ON a.tailnum = f.flight_tailnum
        JOIN (SELECT DISTINCT route FROM ml_serving.route_delay) r
          ON r.route = f.flight_origin || '-' || f.flight_dest
        WHERE f.partition_date = DATE '2013-01-04'
        ORDER BY f.flight_id LIMIT 1
        """
    ).row(0, named=True)


def test_a_known_flight_gets_its_online_features_and_a_prediction(
    ml_domain: MlDomain, client: TestClient
) -> None:
    flight = _known_flight(ml_domain)
    response = client.get(f"/flights/{flight['flight_id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["flight_id"] == flight["flight_id"]
    assert body["model_version"] == artifacts.current_model().version  # type: ignore[union-attr]
    assert 0.0 <= body["delay_probability"] <= 1.0
    assert body["predicted_delayed"] == (body["delay_probability"] >= 0.5)
    assert set(body["features"]) == set(MODEL_FEATURES)
    assert "aircraft_delay" not in body["cold_start"] and "route_delay" not in body["cold_start"]
    assert body["features"]["aircraft_last_dep_delay_min"] == flight["aircraft_last_dep_delay_min"]
    origin = ml_domain.table(
        "SELECT origin_avg_dep_delay_7d FROM ml_serving.origin_delay "
        f"WHERE origin = '{flight['flight_origin']}' ORDER BY event_timestamp DESC LIMIT 1"
    )
    assert body["features"]["origin_avg_dep_delay_7d"] == pytest.approx(origin.item())


def test_an_unseen_aircraft_and_route_get_flagged_defaults(client: TestClient) -> None:
    flight = {
        "carrier": "UA",
        "origin": "EWR",
        "dest": "ZZZ",  # no such route
        "tailnum": "N0SUCH",  # no such aircraft
        "sched_dep_hour": 18,
        "day_of_week": 5,
        "distance_mi": 719,
    }
    response = client.post("/predict", json=flight)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["flight_id"] is None
    assert {"aircraft_delay", "route_delay"} <= set(body["cold_start"])
    assert "origin_delay" not in body["cold_start"]
    assert set(AIRCRAFT) <= set(body["defaulted_features"])
    assert all(body["features"][name] is None for name in AIRCRAFT)
    assert 0.0 <= body["delay_probability"] <= 1.0
    # Defaults are the model's, so the score equals the model's on its defaults.
    bundle = artifacts.load_bundle(artifacts.current_model())  # type: ignore[arg-type]
    row = [
        bundle.defaults[n] if body["features"][n] is None else body["features"][n]
        for n in bundle.features
    ]
    expected = bundle.estimator.predict_proba(pl.DataFrame([row], orient="row").to_numpy())[0, 1]
    assert body["delay_probability"] == pytest.approx(expected)


def test_unknown_and_malformed_requests_are_refused(client: TestClient) -> None:
    assert client.get("/flights/20130104-ZZ9999-JFK").status_code == 404
    assert client.get("/flights/drop table").status_code == 422
    assert client.post("/predict", json={"carrier": "UA"}).status_code == 422
    assert client.get("/health").json()["status"] == "ok"
