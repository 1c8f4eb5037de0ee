"""The derived-results record matches the results contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analysis import QUANTITY_NAMES, AnalysisError, Result


def aiose_conductivity(**changes) -> Result:
    fields = {
        "experiment": "conductivity",
        "cell": "aiose-1",
        "material": "AIOSE",
        "quantity": "ionic_conductivity",
        "value": 0.58,
        "unit": "mS/cm",
        "conditions": {"temperature_degC": 25},
    } | changes
    return Result(**fields)


def test_to_dict_is_the_contract_record():
    assert json.loads(json.dumps(aiose_conductivity().to_dict())) == {
        "experiment": "conductivity",
        "cell": "aiose-1",
        "material": "AIOSE",
        "quantity": "ionic_conductivity",
        "value": 0.58,
        "unit": "mS/cm",
        "conditions": {"temperature_degC": 25},
    }


def test_quantity_names_are_the_contracts_sixteen():
    assert len(set(QUANTITY_NAMES)) == 16
    assert {"ionic_conductivity", "activation_energy", "diffusion_coefficient",
            "pulse_resistance", "electronic_conductivity", "ohmic_resistance",
            "charge_transfer_resistance"} <= set(QUANTITY_NAMES)


def test_unknown_quantity_is_refused():
    with pytest.raises(ValueError, match=r"^unknown quantity 'conductivity'; allowed: ionic_"):
        aiose_conductivity(quantity="conductivity")


@pytest.mark.parametrize("value", [math.nan, math.inf, "0.58", None, True])
def test_value_must_be_a_finite_number(value):
    with pytest.raises(AnalysisError, match=r"^value of ionic_conductivity must be"):
        aiose_conductivity(value=value)


def test_numpy_numbers_become_plain_floats():
    result = aiose_conductivity(value=np.float32(0.5))
    assert type(result.value) is float
    assert type(aiose_conductivity(value=np.int64(3)).to_dict()["value"]) is float


def test_conditions_are_copied_both_ways():
    conditions = {"temperature_degC": 25}
    result = aiose_conductivity(conditions=conditions)
    conditions["temperature_degC"] = 80
    result.to_dict()["conditions"]["cycle"] = 1
    assert result.conditions == {"temperature_degC": 25}


def test_records_are_frozen():
    with pytest.raises(AttributeError):
        aiose_conductivity().value = 1.0  # type: ignore[misc]
